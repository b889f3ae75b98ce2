package postgres

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// comments reads the comment of every column of a table, "" for none.
func comments(t *testing.T, s *Store, table string) map[string]string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT attname, coalesce(col_description(attrelid, attnum), '') FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, s.name(table))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var col, text string
		if err := rows.Scan(&col, &text); err != nil {
			t.Fatal(err)
		}
		out[col] = text
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestColumnComments checks that every column carries its COMET display
// name as its comment: on the table created, on a column added, after a
// rename, in a bulk load, and on a table whose comments were lost (made by
// an earlier version) once the store opens it.
func TestColumnComments(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, schema := freshStore(t, d, "comments")
	cols := []event.Column{{Key: "id", Name: "Person ID", Type: event.TypeNumber}, {Key: "name", Name: `It's "a" \ name`, Type: event.TypeString}}
	table := &consumer.Table{Report: "people", Columns: cols, Key: []string{"id"}}
	apply := func(t2 *consumer.Table) {
		t.Helper()
		if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeTable, Table: t2}}}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, want map[string]string) {
		t.Helper()
		if got := comments(t, s, "people"); !maps.Equal(got, want) {
			t.Errorf("%s: comments %q, want %q", what, got, want)
		}
	}
	apply(table)
	expect("a new table", map[string]string{"id": "Person ID", "name": `It's "a" \ name`})

	wider := &consumer.Table{Report: "people", Columns: append(cols[:2:2], event.Column{Key: "club", Name: "Club", Type: event.TypeString}), Key: []string{"id"}}
	apply(wider)
	expect("a column added", map[string]string{"id": "Person ID", "name": `It's "a" \ name`, "club": "Club"})

	renamed := &consumer.Table{Report: "people", Columns: []event.Column{cols[0], {Key: "name", Name: "Full name", Type: event.TypeString}, {Key: "club", Name: "", Type: event.TypeString}}, Key: []string{"id"}}
	apply(renamed)
	expect("renamed, and a name gone", map[string]string{"id": "Person ID", "name": "Full name", "club": ""})

	ld, err := s.BeginLoad(ctx, wider)
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	expect("a bulk load", map[string]string{"id": "Person ID", "name": `It's "a" \ name`, "club": "Club"})

	if _, err := s.pool.Exec(ctx, `COMMENT ON COLUMN `+s.name("people")+`.id IS NULL; COMMENT ON COLUMN `+s.name("people")+`.club IS 'x'`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, d, schema); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	expect("the store opened again", map[string]string{"id": "Person ID", "name": `It's "a" \ name`, "club": "Club"})
}

// TestColumnRenamedInStream renames a column in a schema event: the sink
// updates the column's comment, and the layout it keeps.
func TestColumnRenamedInStream(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, _ := freshStore(t, d, "renamed")
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	_, cols, _ := sinktest.PublishPersons(t, js, 3)
	cols[1].Name = "Given name"
	sc, err := event.Encode(event.ID("persons", "schema-2"), "comet://test/persons", event.TypeSchema, time.Now(), event.SchemaChange{Report: "persons", Columns: cols, Undeclared: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "comet.persons.report.schema", sc)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = consumer.Materialize(mctx, consumer.MaterializeConfig{JetStream: js, Durable: "renamed", Store: s,
		OnApplied: func(msgs []*consumer.Message) {
			if msgs[len(msgs)-1].Seq == ack.Sequence {
				cancel()
			}
		}})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := comments(t, s, "persons")[cols[1].Key]; got != "Given name" {
		t.Errorf("the comment of %s is %q, want the new name", cols[1].Key, got)
	}
	tables, err := s.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := tables["persons"].Column(cols[1].Key); c.Name != "Given name" {
		t.Errorf("the layout names %s %q, want the new name", cols[1].Key, c.Name)
	}
}
