package consumer

import (
	"context"
	"slices"
	"strings"

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

// TokenColumn is the column a SQL store keys a content-keyed report's
// table by: the row key token, which the rows' own columns cannot give.
const TokenColumn = "_cometstream_key"

// KeyColumn is a column of a table's primary key in a SQL store.
type KeyColumn struct {
	Name string
	// Extra is set for a column the report's columns do not list (the
	// token of a content-keyed table, a key column COMET never declared):
	// the store adds it, as text, NOT NULL when NotNull is set (the token).
	Extra, NotNull bool
}

// PrimaryKey returns the columns of the table's primary key in a SQL store:
// TokenColumn for a content-keyed table, else the key columns in order.
// The two built-in stores create their tables by it (CreateTable), and a
// SQL store of another database should too, so that its rows are
// identified as theirs.
func (t *Table) PrimaryKey() []KeyColumn {
	if t.ContentKeyed() {
		return []KeyColumn{{Name: TokenColumn, Extra: true, NotNull: true}}
	}
	out := make([]KeyColumn, len(t.Key))
	for i, k := range t.Key {
		_, declared := t.Column(k)
		out[i] = KeyColumn{Name: k, Extra: !declared}
	}
	return out
}

// CreateTable returns the statement that creates the table in a SQL store
// unless it exists: named table (quoted already), a column for each of
// Columns, named by col and typed by sqlType, each Extra column of
// PrimaryKey typed as a STRING, and the primary key.
func (t *Table) CreateTable(table string, col func(key string) string, sqlType func(event.ColumnType) string) string {
	var defs, pk []string
	for _, c := range t.Columns {
		defs = append(defs, col(c.Key)+" "+sqlType(c.Type))
	}
	for _, k := range t.PrimaryKey() {
		pk = append(pk, col(k.Name))
		if !k.Extra {
			continue
		}
		def := col(k.Name) + " " + sqlType(event.TypeString)
		if k.NotNull {
			def += " NOT NULL"
		}
		defs = append(defs, def)
	}
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (` + strings.Join(defs, ", ") + `, PRIMARY KEY (` + strings.Join(pk, ", ") + `))`
}

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

// BulkLoader is a Store that can fill an empty table faster than Apply can,
// because an empty table needs no merge: a bulk COPY or INSERT instead of
// an upsert per row. It is optional; Materialize uses it, when the Store
// implements it, to bootstrap a report from its snapshot bucket, and Apply
// for everything else.
type BulkLoader interface {
	Store
	// BeginLoad starts the transaction of one report's bulk load: it
	// removes the report's rows and position and creates its table or adds
	// the columns it lacks (as a ChangeTable of t would). The load then
	// holds the store: Materialize calls nothing else on it until the load
	// ends with Commit or Abort.
	BeginLoad(ctx context.Context, t *Table) (BulkLoad, error)
}

// BulkLoad is one report's bulk load, one transaction: nothing of it is
// visible, to Positions, Tables or another reader of the database, until
// Commit, and a load that never commits (aborted, failed, or the process
// killed) leaves the store as it was before BeginLoad. This is what lets a
// bootstrap killed at any moment start over cleanly: the report has no
// position until its rows are all in, so the next start loads it again
// from an empty table.
type BulkLoad interface {
	// Write adds a batch of rows. The table starts empty, but a token may
	// come again (the snapshot bucket is read while the producer writes
	// it): the last row of a token wins, as with Apply. Write keeps nothing
	// of b once it returns. After an error, the load can only be aborted.
	Write(ctx context.Context, b *LoadBatch) error
	// Commit records the positions and commits the load, atomically.
	Commit(ctx context.Context, positions map[string]uint64) error
	// Abort rolls the load back; after Commit it does nothing.
	Abort(ctx context.Context) error
}

// LoadBatch is rows of one report for a BulkLoad, by column rather than as
// Rows, which a million of would cost a million maps.
type LoadBatch struct {
	// Table is the report's layout. It may have columns the store's table
	// lacks (a snapshot row can bring a column the schema has not yet
	// declared): Write adds them first, as a ChangeTable of it would.
	Table *Table
	// Tokens holds each row's key token (the key of a content-keyed
	// table).
	Tokens []string
	// Values holds the rows one after the other, each with one value per
	// column of Table, in its order; null where a row lacks the column.
	Values []event.Value
}

// Len returns the number of rows.
func (b *LoadBatch) Len() int { return len(b.Tokens) }

// Row returns the values of row i, in the order of Table.Columns.
func (b *LoadBatch) Row(i int) []event.Value {
	n := len(b.Table.Columns)
	return b.Values[i*n : (i+1)*n : (i+1)*n]
}

// Changes returns the batch as upserts (for a store that writes Changes).
func (b *LoadBatch) Changes() []Change {
	out := make([]Change, b.Len())
	for i := range out {
		row := make(event.Row, len(b.Table.Columns))
		for j, v := range b.Row(i) {
			row[b.Table.Columns[j].Key] = v
		}
		out[i] = Change{Kind: ChangeUpsert, Table: b.Table, Token: b.Tokens[i], Row: row}
	}
	return out
}
