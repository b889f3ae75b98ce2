package consumer

import (
	"context"
	"slices"

	"github.com/cometstream/cometstream/event"
)

// Store is a database that Materialize keeps equal to the producer's
// snapshot. The built-in ones are consumer/sqlite and consumer/postgres;
// another database needs only these four methods, and sinktest.RunStore
// proves an implementation. The rules a Store follows:
//
//   - Apply is atomic: the changes and the positions of a batch are
//     committed together or not at all. This is what makes a redelivered or
//     replayed event change nothing, and a killed sink resume exactly where
//     its database says.
//   - Apply applies Changes in order. A ChangeTable creates the report's
//     table or adds the columns it lacks (columns are never removed, and a
//     column keeps its first type); it always comes before the first row of
//     a table or a row with a new column.
//   - A ChangeUpsert replaces the whole row whose key it names, inserting it
//     if absent; a column the Row lacks holds null. A ChangeDelete removes
//     the row, and is no error when the row is absent. A row is identified
//     by Table.Key's columns, or, for a content-keyed table (Table.Key is
//     ["*"]), by the Token, because identical rows are distinct rows there.
//   - Positions are the stream sequence of the last event applied, by
//     report name, plus names Materialize uses for itself (they start with
//     "#"): a Store keeps any name it is given, and a batch may carry
//     positions and no change.
//   - Positions, Tables and Apply's effects survive closing and reopening
//     the database.
//   - Reset removes a report's rows and position (the table may stay, empty);
//     resetting a report the store never had is no error.
//   - Values are event.Value in their contract form: a NUMBER or AMOUNT keeps
//     its exact digits where the database can (say so when it cannot), DATE
//     and DATETIME arrive as text.
//   - Materialize calls a Store from one goroutine at a time.
type Store interface {
	// Positions returns, per report, the stream sequence of the last event
	// applied.
	Positions(ctx context.Context) (map[string]uint64, error)
	// Tables returns the layout of every report table the store holds.
	Tables(ctx context.Context) (map[string]*Table, error)
	// Apply applies a batch of changes and records its positions, atomically.
	Apply(ctx context.Context, b *Batch) error
	// Reset removes a report's rows and position, to rebuild it.
	Reset(ctx context.Context, report string) error
}

// Table is the layout of a report's table.
type Table struct {
	Report string
	// Columns are every column the report has had, in order of appearance;
	// a column the report drops stays.
	Columns []event.Column
	// Key lists the key columns, or ["*"] for reports keyed by content
	// (their table is keyed by the row key token).
	Key []string
}

// ContentKeyed reports whether rows are identified by their content.
func (t *Table) ContentKeyed() bool { return len(t.Key) == 1 && t.Key[0] == event.ContentKey }

// Column returns the column with the given key.
func (t *Table) Column(key string) (event.Column, bool) {
	i := slices.IndexFunc(t.Columns, func(c event.Column) bool { return c.Key == key })
	if i < 0 {
		return event.Column{}, false
	}
	return t.Columns[i], true
}

// merged returns the table with columns added (never removed). A column
// whose type changed keeps its first type: tables are not rewritten.
func (t *Table) merged(cols []event.Column) *Table {
	out := &Table{Report: t.Report, Columns: slices.Clone(t.Columns), Key: t.Key}
	for _, c := range cols {
		if _, ok := out.Column(c.Key); !ok {
			out.Columns = append(out.Columns, c)
		}
	}
	return out
}

// ChangeKind says what a Change does.
type ChangeKind int

// The kinds of change.
const (
	// ChangeTable creates the table, or adds the columns it lacks.
	ChangeTable ChangeKind = iota
	// ChangeUpsert inserts or replaces a row.
	ChangeUpsert
	// ChangeDelete removes a row.
	ChangeDelete
)

// Change is one effect on a store.
type Change struct {
	Kind  ChangeKind
	Table *Table
	// Token is the row key token (the key of content-keyed tables).
	Token string
	// Row is the new row for an upsert, and the key values for a delete.
	Row event.Row
}

// Batch is what one transaction applies.
type Batch struct {
	Changes []Change
	// Positions are the reports' stream sequences after the batch.
	Positions map[string]uint64
}
