package sinktest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// RowReader reads a report's table back, values in their event form under
// their column keys whatever the columns are named, with the report's
// position: what the built-in stores offer (ReadRows).
type RowReader interface {
	ReadRows(ctx context.Context, report string) ([]event.Row, uint64, error)
}

// ReadsConsistent applies n batches to s, batch i adding row i of a people
// table at position i, while it reads the table through r, a reader of the
// same database (a read-only store opened on it): every read must hold the
// rows of the position read with them, never part of a batch.
func ReadsConsistent(t *testing.T, s consumer.Store, r RowReader, n int) {
	t.Helper()
	ctx := context.Background()
	table := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: []event.Column{{Key: "id", Type: event.TypeNumber}}}
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeTable, Table: table}}, Positions: map[string]uint64{"people": 0}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			id := strconv.Itoa(i)
			err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeUpsert, Table: table, Token: id, Row: event.Row{"id": event.NumberValue(id)}}}, Positions: map[string]uint64{"people": uint64(i)}})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		rows, pos, err := r.ReadRows(ctx, "people")
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(rows)) != pos {
			t.Fatalf("read %d rows at position %d", len(rows), pos)
		}
		if pos == uint64(n) {
			t.Logf("%d reads", reads)
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// RowsFromSQL turns rows a database returned (one map per row, values as
// database/sql or a text cast gives them) into event rows, using the
// store's table layout for the column types: a helper for StoreTarget.Rows
// of SQL stores.
func RowsFromSQL(t *testing.T, s consumer.Store, report string, raw []map[string]any) []event.Row {
	t.Helper()
	if raw == nil {
		return nil
	}
	tables, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	table := tables[report]
	out := make([]event.Row, 0, len(raw))
	for _, r := range raw {
		row := event.Row{}
		for k, v := range r {
			if strings.HasPrefix(k, "_cometstream") {
				continue
			}
			c, known := event.Column{}, false
			if table != nil {
				c, known = table.Column(k)
			}
			switch {
			case v == nil:
				row[k] = event.Value{}
			case known && c.Type.Numeric():
				row[k] = event.NumberValue(text(v))
			default:
				row[k] = event.TextValue(text(v))
			}
		}
		out = append(out, row)
	}
	return out
}
