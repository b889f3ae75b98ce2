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

// ReadsBack applies to s a table of fees keyed by ref, with a row of every
// column type, a row of nulls but for two and one holding only an integer
// too large for 64 bits, at position 7, and a
// content-keyed table of goals with two identical rows, at position 9, and
// reads them back through r, a reader of the same database (a read-only
// store opened on it): the fees as they were written, but for each number,
// which numbers says how the database reads back (one that cannot keep
// every digit says how it rounds); the goals as two rows, each with its
// token under consumer.TokenColumn; and a report without a table as no
// rows at position 0.
func ReadsBack(t *testing.T, s consumer.Store, r RowReader, numbers map[string]string) {
	t.Helper()
	number := func(literal string) event.Value {
		read, ok := numbers[literal]
		if !ok {
			t.Fatalf("numbers does not say how %s reads back", literal)
		}
		return event.NumberValue(read)
	}
	want := map[string]event.Row{
		"FEE 1": {
			"ref": event.TextValue("FEE 1"), "n": number("42"), "amount": number("125.50"), "big": number("12345678901234567890.10"),
			"due": event.TextValue("2002-07-24"), "at": event.TextValue("2026-03-31T07:49:21.680Z"), "note": event.NullValue(),
		},
		"007": {
			"ref": event.TextValue("007"), "n": number("-1.5e3"), "amount": event.NullValue(), "big": event.NullValue(),
			"due": event.NullValue(), "at": event.NullValue(), "note": event.NullValue(),
		},
		"INT": {
			"ref": event.TextValue("INT"), "n": event.NullValue(), "amount": event.NullValue(), "big": number("12345678901234567890"),
			"due": event.NullValue(), "at": event.NullValue(), "note": event.NullValue(),
		},
	}
	ctx := context.Background()
	fees := &consumer.Table{Report: "fees", Key: []string{"ref"}, Columns: []event.Column{
		{Key: "ref", Type: event.TypeString}, {Key: "n", Type: event.TypeNumber}, {Key: "amount", Type: event.TypeAmount}, {Key: "big", Type: event.TypeNumber},
		{Key: "due", Type: event.TypeDate}, {Key: "at", Type: event.TypeDateTime}, {Key: "note", Type: event.TypeString},
	}}
	goals := &consumer.Table{Report: "goals", Key: []string{event.ContentKey}, Columns: []event.Column{{Key: "minute", Type: event.TypeNumber}}}
	err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: fees},
		{Kind: consumer.ChangeUpsert, Table: fees, Token: "FEE 1", Row: event.Row{
			"ref": event.TextValue("FEE 1"), "n": event.NumberValue("42"), "amount": event.NumberValue("125.50"), "big": event.NumberValue("12345678901234567890.10"),
			"due": event.TextValue("2002-07-24"), "at": event.TextValue("2026-03-31T07:49:21.680Z"), "note": event.NullValue(),
		}},
		{Kind: consumer.ChangeUpsert, Table: fees, Token: "007", Row: event.Row{"ref": event.TextValue("007"), "n": event.NumberValue("-1.5e3")}},
		{Kind: consumer.ChangeUpsert, Table: fees, Token: "INT", Row: event.Row{"ref": event.TextValue("INT"), "big": event.NumberValue("12345678901234567890")}},
		{Kind: consumer.ChangeTable, Table: goals},
		{Kind: consumer.ChangeUpsert, Table: goals, Token: "h01", Row: event.Row{"minute": event.NumberValue("12")}},
		{Kind: consumer.ChangeUpsert, Table: goals, Token: "h01-2", Row: event.Row{"minute": event.NumberValue("12")}},
	}, Positions: map[string]uint64{"fees": 7, "goals": 9}})
	if err != nil {
		t.Fatal(err)
	}
	rows, pos, err := r.ReadRows(ctx, "fees")
	if err != nil || pos != 7 || len(rows) != len(want) {
		t.Fatalf("ReadRows(fees) = %d rows at %d, %v; want %d rows at 7", len(rows), pos, err, len(want))
	}
	got := byToken(rows, "ref")
	for ref, w := range want {
		g := got[ref]
		if len(g) != len(w) {
			t.Errorf("row %s has columns %v, want %v", ref, g, w)
		}
		for col, wv := range w {
			if gv := g[col]; !gv.Equal(wv) {
				t.Errorf("row %s column %s = %+v, want %+v", ref, col, gv, wv)
			}
		}
	}
	rows, pos, err = r.ReadRows(ctx, "goals")
	if err != nil || pos != 9 || len(rows) != 2 {
		t.Fatalf("ReadRows(goals) = %d rows at %d, %v; want 2 rows at 9", len(rows), pos, err)
	}
	if g := byToken(rows, consumer.TokenColumn); g["h01"]["minute"].Raw != "12" || g["h01-2"]["minute"].Raw != "12" {
		t.Errorf("content-keyed rows %v, want both tokens under %s", rows, consumer.TokenColumn)
	}
	if rows, pos, err := r.ReadRows(ctx, "nobody"); err != nil || pos != 0 || rows != nil {
		t.Errorf("ReadRows of a report without a table = %v at %d, %v; want nothing at 0", rows, pos, err)
	}
}

// byToken returns rows by the text of their column col.
func byToken(rows []event.Row, col string) map[string]event.Row {
	out := map[string]event.Row{}
	for _, r := range rows {
		out[r[col].Raw] = r
	}
	return out
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
