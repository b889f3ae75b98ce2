package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
)

// tempStore opens a store on a new database file in the test's temporary
// directory, closed when the test ends, and returns it with the file's path.
func tempStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sink.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func byKey(rows []event.Row, col string) map[string]event.Row {
	out := map[string]event.Row{}
	for _, r := range rows {
		out[r[col].Raw] = r
	}
	return out
}

// TestReadRows reads back what the sink wrote, in event form, with the
// position, from a read-only store.
func TestReadRows(t *testing.T) {
	ctx := context.Background()
	s, path := tempStore(t)
	fees := &consumer.Table{Report: "fees", Key: []string{"ref"}, Columns: []event.Column{
		{Key: "ref", Type: event.TypeString}, {Key: "n", Type: event.TypeNumber}, {Key: "amount", Type: event.TypeAmount}, {Key: "big", Type: event.TypeNumber},
		{Key: "due", Type: event.TypeDate}, {Key: "at", Type: event.TypeDateTime}, {Key: "note", Type: event.TypeString},
	}}
	goals := &consumer.Table{Report: "goals", Key: []string{event.ContentKey}, Columns: []event.Column{{Key: "minute", Type: event.TypeNumber}}}
	row := event.Row{
		"ref": event.TextValue("FEE 1"), "n": event.NumberValue("42"), "amount": event.NumberValue("125.50"), "big": event.NumberValue("12345678901234567890"),
		"due": event.TextValue("2002-07-24"), "at": event.TextValue("2026-03-31T07:49:21.680Z"), "note": event.NullValue(),
	}
	err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: fees},
		{Kind: consumer.ChangeUpsert, Table: fees, Row: row},
		{Kind: consumer.ChangeUpsert, Table: fees, Row: event.Row{"ref": event.TextValue("007"), "n": event.NumberValue("-1.5e3")}},
		{Kind: consumer.ChangeTable, Table: goals},
		{Kind: consumer.ChangeUpsert, Table: goals, Token: "h01", Row: event.Row{"minute": event.NumberValue("12")}},
		{Kind: consumer.ChangeUpsert, Table: goals, Token: "h01-2", Row: event.Row{"minute": event.NumberValue("12")}},
	}, Positions: map[string]uint64{"fees": 7, "goals": 9}})
	if err != nil {
		t.Fatal(err)
	}

	r, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, pos, err := r.ReadRows(ctx, "fees")
	if err != nil || pos != 7 || len(rows) != 2 {
		t.Fatalf("ReadRows(fees) = %d rows at %d, %v; want 2 rows at 7", len(rows), pos, err)
	}
	got := byKey(rows, "ref")
	want := map[string]event.Row{
		"FEE 1": {
			"ref": event.TextValue("FEE 1"), "n": event.NumberValue("42"), "amount": event.NumberValue("125.5"), "big": event.NumberValue("1.2345678901234567e+19"),
			"due": event.TextValue("2002-07-24"), "at": event.TextValue("2026-03-31T07:49:21.680Z"), "note": event.NullValue(),
		},
		"007": {
			"ref": event.TextValue("007"), "n": event.NumberValue("-1500"), "amount": event.NullValue(), "big": event.NullValue(),
			"due": event.NullValue(), "at": event.NullValue(), "note": event.NullValue(),
		},
	}
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
	if g := byKey(rows, KeyColumn); g["h01"]["minute"].Raw != "12" || g["h01-2"] == nil {
		t.Errorf("content-keyed rows %v, want both tokens under %s", rows, KeyColumn)
	}

	rows, pos, err = r.ReadRows(ctx, "nobody")
	if err != nil || pos != 0 || rows != nil {
		t.Errorf("ReadRows of a report without a table = %v at %d, %v; want nothing at 0", rows, pos, err)
	}
	if err := r.Apply(ctx, &consumer.Batch{Positions: map[string]uint64{"fees": 8}}); err == nil {
		t.Error("a read-only store applied a batch")
	}
}

// TestReadRowsConsistent reads while a sink writes: the rows are always
// those of the position read with them.
func TestReadRowsConsistent(t *testing.T) {
	s, path := tempStore(t)
	r, err := OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sinktest.ReadsConsistent(t, s, r, 200)
}

// TestOpenReadOnly refuses what is not a sink's database, and creates
// nothing.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenReadOnly(ctx, missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening a missing file: %v, want not exist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
	other := filepath.Join(dir, "other.db")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(ctx, other); err == nil {
		t.Error("opened a database that is not a sink's")
	}
}
