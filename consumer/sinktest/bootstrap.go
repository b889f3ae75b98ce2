package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// storeBootstrap materializes a snapshot bucket that keeps five revisions
// of each key (the producer's keep one), with keys updated, deleted and
// purged, and a row with a column the schema lacks: the table holds the
// last revision of each key still there, and the new column.
func storeBootstrap(t *testing.T, st StoreTarget) {
	ctx := context.Background()
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	cols := []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "name", Name: "Name", Type: event.TypeString}}
	checkpoint := createStream(t, js, cols)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.BucketName(event.DefaultPrefix, "people"), History: 5})
	if err != nil {
		t.Fatal(err)
	}
	put := func(id int, value string) {
		t.Helper()
		if _, err := kv.PutString(ctx, strconv.Itoa(id), value); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int]event.Row{}
	for id := 1; id <= 30; id++ {
		put(id, fmt.Sprintf(`{"id":%d,"name":"p%d"}`, id, id))
		want[id] = event.Row{"id": event.NumberValue(strconv.Itoa(id)), "name": event.TextValue(fmt.Sprint("p", id)), "nickname": {}}
	}
	for id := 1; id <= 10; id++ {
		put(id, fmt.Sprintf(`{"id":%d,"name":"q%d"}`, id, id))
		want[id]["name"] = event.TextValue(fmt.Sprint("q", id))
	}
	for id := 11; id <= 15; id++ {
		if err := kv.Delete(ctx, strconv.Itoa(id)); err != nil {
			t.Fatal(err)
		}
		delete(want, id)
	}
	if err := kv.Purge(ctx, "16"); err != nil {
		t.Fatal(err)
	}
	delete(want, 16)
	put(31, `{"id":31,"name":"p31","nickname":"Tiny"}`)
	want[31] = event.Row{"id": event.NumberValue("31"), "name": event.TextValue("p31"), "nickname": event.TextValue("Tiny")}
	putState(t, js, "people", event.ReportState{Checkpoint: checkpoint, Key: []string{"id"}, Columns: cols})

	s := st.Open(t, "bootstrap")
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = consumer.Materialize(mctx, consumer.MaterializeConfig{JetStream: js, Durable: "bootstrap", Store: s, Reports: []string{"people"}, OnReady: cancel})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	all := append(slices.Clone(cols), event.Column{Key: "nickname", Type: event.TypeString})
	if d := storeDiff(all, []string{"id"}, slices.Collect(maps.Values(want)), st.Rows(t, s, "people")); d != "" {
		t.Errorf("the table after the bootstrap: %s", d)
	}
	pos, err := s.Positions(ctx)
	if err != nil || pos["people"] != checkpoint {
		t.Errorf("position %v, %v; want the checkpoint %d", pos["people"], err, checkpoint)
	}
}

// storeBulkLoad checks the BulkLoader contract without a producer.
func storeBulkLoad(t *testing.T, st StoreTarget) {
	ctx := context.Background()
	s := st.Open(t, "bulk")
	bl, ok := s.(consumer.BulkLoader)
	if !ok {
		t.Skip("the store is not a consumer.BulkLoader")
	}
	cols := []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "name", Name: "Name", Type: event.TypeString}}
	table := &consumer.Table{Report: "people", Columns: cols, Key: []string{"id"}}
	wider := &consumer.Table{Report: "people", Columns: append(slices.Clone(cols), event.Column{Key: "club", Name: "Club", Type: event.TypeString}), Key: []string{"id"}}
	person := func(id, name string, club ...string) consumer.Change {
		r := event.Row{"id": event.NumberValue(id), "name": event.TextValue(name)}
		t := table
		if len(club) > 0 {
			r["club"], t = event.TextValue(club[0]), wider
		}
		return consumer.Change{Kind: consumer.ChangeUpsert, Table: t, Token: id, Row: r}
	}
	names := func(s consumer.Store) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, r := range st.Rows(t, s, "people") {
			out[r["id"].Raw] = r["name"].Raw + "/" + r["club"].Raw
		}
		return out
	}
	position := func(s consumer.Store) uint64 {
		t.Helper()
		pos, err := s.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return pos["people"]
	}
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: table}, person("1", "Bale"), person("2", "Ramsey"),
	}, Positions: map[string]uint64{"people": 5}}); err != nil {
		t.Fatal(err)
	}
	load := func(writes ...*consumer.LoadBatch) consumer.BulkLoad {
		t.Helper()
		ld, err := bl.BeginLoad(ctx, table)
		if err != nil {
			t.Fatalf("BeginLoad: %v", err)
		}
		for _, w := range writes {
			if err := ld.Write(ctx, w); err != nil {
				t.Fatalf("Write: %v", err)
			}
		}
		return ld
	}

	// A load that is aborted leaves the store as it was, rows, layout and
	// position.
	ld := load(batch(table, person("7", "Allen"), person("8", "James")), batch(wider, person("9", "Moore", "Wrexham")))
	if err := ld.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := ld.Abort(ctx); err != nil {
		t.Errorf("a second Abort: %v", err)
	}
	if got, want := names(s), map[string]string{"1": "Bale/", "2": "Ramsey/"}; !maps.Equal(got, want) || position(s) != 5 {
		t.Fatalf("after an aborted load: rows %v, position %d; want %v, 5", got, position(s), want)
	}
	if tables, err := s.Tables(ctx); err != nil || len(tables["people"].Columns) != 2 {
		t.Fatalf("after an aborted load the layout is %v, %v; want the 2 columns it had", tables["people"], err)
	}

	// A committed load replaces the rows: a token that comes again ends
	// with its last row, and a column added mid-load (a batch whose table
	// has it) is null in the rows written before it.
	ld = load(
		batch(table, person("10", "Fishlock"), person("11", "Ward"), person("10", "Fishlock-Harding")),
		batch(wider, person("12", "Ingle", "Chelsea"), person("11", "Ward", "Swansea")),
		batch(wider, person("13", "Hughes")),
	)
	if err := ld.Commit(ctx, map[string]uint64{"people": 9}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := ld.Write(ctx, batch(wider, person("14", "Late"))); err == nil {
		t.Error("Write after Commit is no error")
	}
	want := map[string]string{"10": "Fishlock-Harding/", "11": "Ward/Swansea", "12": "Ingle/Chelsea", "13": "Hughes/"}
	s = st.Open(t, "bulk") // what was committed survives a restart
	if got := names(s); !maps.Equal(got, want) || position(s) != 9 {
		t.Fatalf("after a committed load: rows %v, position %d; want %v, 9", got, position(s), want)
	}
	// The table takes upserts and deletes as before.
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{
		person("13", "Hughes", "Cardiff"), person("15", "Harding"),
		{Kind: consumer.ChangeDelete, Table: wider, Token: "10", Row: event.Row{"id": event.NumberValue("10")}},
	}}); err != nil {
		t.Fatal(err)
	}
	if got, want := names(s), map[string]string{"11": "Ward/Swansea", "12": "Ingle/Chelsea", "13": "Hughes/Cardiff", "15": "Harding/"}; !maps.Equal(got, want) {
		t.Fatalf("after a load and upserts: %v, want %v", got, want)
	}

	// A content-keyed table loads identical rows as distinct rows, and one
	// token written twice as one row.
	ct := &consumer.Table{Report: "goals", Columns: cols, Key: []string{event.ContentKey}}
	goal := func(tok string) consumer.Change {
		return consumer.Change{Kind: consumer.ChangeUpsert, Table: ct, Token: tok, Row: event.Row{"id": event.NumberValue("1"), "name": event.TextValue("goal")}}
	}
	ld, err := bl.BeginLoad(ctx, ct)
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Write(ctx, batch(ct, goal("h01"), goal("h01-2"), goal("h01"))); err != nil {
		t.Fatal(err)
	}
	if err := ld.Commit(ctx, map[string]uint64{"goals": 3}); err != nil {
		t.Fatal(err)
	}
	if n := len(st.Rows(t, s, "goals")); n != 2 {
		t.Fatalf("a content-keyed load has %d rows, want 2", n)
	}
}

// batch makes a LoadBatch of upserts, for the table t.
func batch(t *consumer.Table, upserts ...consumer.Change) *consumer.LoadBatch {
	b := &consumer.LoadBatch{Table: t}
	for _, ch := range upserts {
		b.Tokens = append(b.Tokens, ch.Token)
		for _, c := range t.Columns {
			b.Values = append(b.Values, ch.Row[c.Key])
		}
	}
	return b
}
