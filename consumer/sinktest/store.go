package sinktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// StoreTarget is a consumer.Store under test: any implementation, the
// built-in SQLite and PostgreSQL stores or one written for another
// database, runs the same suite with RunStore.
type StoreTarget struct {
	// Open opens the store called name. The same name opens the same data
	// again (as after a restart); a name not used before, an empty store.
	// The suite closes nothing: Open registers its own cleanup.
	Open func(t *testing.T, name string) consumer.Store
	// Rows reads a report's rows back from the store, values in their event
	// form (numbers may come back rounded if the database cannot keep every
	// digit: they are compared by value); nil when it has no table for it.
	Rows func(t *testing.T, s consumer.Store, report string) []event.Row
}

// RunStore runs the store suite: the rules every consumer.Store follows
// (see its documentation) checked directly, and those of a
// consumer.BulkLoader for a store that is one, then the store materialized
// from a real producer while the data changes and the materializer is
// stopped and restarted, a schema change, a content-keyed report, a store
// that fell behind the stream's retention (stopped, and while running), a
// replay into a new store after the stream was trimmed, and reports reset
// and bootstrapped again. Every table must end equal to the simulated COMET row
// by row.
func RunStore(t *testing.T, st StoreTarget) {
	t.Run("rules", func(t *testing.T) { storeRules(t, st) })
	t.Run("new-and-held-rows", func(t *testing.T) { storeNewAndHeld(t, st) })
	t.Run("hostile-column-keys", func(t *testing.T) { storeHostileColumnKeys(t, st) })
	t.Run("bulk-load", func(t *testing.T) { storeBulkLoad(t, st) })
	t.Run("bootstrap", func(t *testing.T) { storeBootstrap(t, st) })
	t.Run("converge", func(t *testing.T) { storeConverge(t, st) })
	t.Run("behind-while-running", func(t *testing.T) { storeBehindWhileRunning(t, st) })
	t.Run("no-restart-loop", func(t *testing.T) { storeNoRestartLoop(t, st) })
	t.Run("failing", func(t *testing.T) { storeFailing(t, st) })
	t.Run("pass-under-way-load", func(t *testing.T) { passUnderWayLoad(t, st) })
	t.Run("pass-under-way-new-store", func(t *testing.T) { passUnderWayNewStore(t, st) })
	t.Run("pass-under-way-stopped", func(t *testing.T) { passUnderWayStopped(t, st) })
}

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
	state, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName(event.DefaultPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(event.ReportState{Checkpoint: checkpoint, Key: []string{"id"}, Columns: cols})
	if _, err := state.Put(ctx, "people", rec); err != nil {
		t.Fatal(err)
	}

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

// storeRules checks the Store contract without a producer.
func storeRules(t *testing.T, st StoreTarget) {
	ctx := context.Background()
	s := st.Open(t, "rules")
	pos, err := s.Positions(ctx)
	if err != nil || len(pos) != 0 {
		t.Fatalf("a new store has positions %v, %v", pos, err)
	}
	cols := []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "name", Name: "Name", Type: event.TypeString}}
	table := &consumer.Table{Report: "people", Columns: cols, Key: []string{"id"}}
	row := func(id, name string) event.Row {
		return event.Row{"id": event.NumberValue(id), "name": event.TextValue(name)}
	}
	apply := func(b *consumer.Batch) {
		t.Helper()
		if err := s.Apply(ctx, b); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	apply(&consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: table},
		{Kind: consumer.ChangeUpsert, Table: table, Token: "1", Row: row("1", "Bale")},
		{Kind: consumer.ChangeUpsert, Table: table, Token: "2", Row: row("2", "Ramsey")},
	}, Positions: map[string]uint64{"people": 7, "#stream": 42}})
	// An upsert replaces the row; a delete of a row that is not there is
	// not an error; a batch of positions alone is applied.
	apply(&consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeUpsert, Table: table, Token: "1", Row: row("1", "Bale-Jones")},
		{Kind: consumer.ChangeDelete, Table: table, Token: "2", Row: event.Row{"id": event.NumberValue("2")}},
		{Kind: consumer.ChangeDelete, Table: table, Token: "3", Row: event.Row{"id": event.NumberValue("3")}},
	}, Positions: map[string]uint64{"people": 9}})
	apply(&consumer.Batch{Positions: map[string]uint64{"other": 3}})
	s = st.Open(t, "rules") // what was committed survives a restart
	pos, err = s.Positions(ctx)
	if err != nil || pos["people"] != 9 || pos["#stream"] != 42 || pos["other"] != 3 {
		t.Fatalf("positions after reopening %v, %v; want people 9, #stream 42, other 3", pos, err)
	}
	rows := st.Rows(t, s, "people")
	if len(rows) != 1 || rows[0]["name"].Raw != "Bale-Jones" || !sameRow(cols, rows[0], row("1", "Bale-Jones")) {
		t.Fatalf("rows %v, want only person 1, renamed", rows)
	}
	// Columns only grow; a row without a value for one holds null.
	wider := &consumer.Table{Report: "people", Columns: append(slices.Clone(cols), event.Column{Key: "club", Name: "Club", Type: event.TypeString}), Key: []string{"id"}}
	apply(&consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: wider},
		{Kind: consumer.ChangeUpsert, Table: wider, Token: "4", Row: event.Row{"id": event.NumberValue("4"), "name": event.TextValue("Fishlock"), "club": event.TextValue("Cardiff")}},
	}})
	tables, err := s.Tables(ctx)
	if err != nil || tables["people"] == nil || len(tables["people"].Columns) != 3 || !slices.Equal(tables["people"].Key, []string{"id"}) {
		t.Fatalf("tables %v, %v: want people with 3 columns keyed by id", tables, err)
	}
	for _, r := range st.Rows(t, s, "people") {
		if r["id"].Raw == "1" && !r["club"].IsNull() {
			t.Errorf("an old row's new column is %+v, want null", r["club"])
		}
	}
	// Reset removes the rows and the position of one report (the table may
	// stay, empty: its layout only ever grows).
	if err := s.Reset(ctx, "people"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx, "never-seen"); err != nil {
		t.Fatalf("resetting a report never seen: %v", err)
	}
	pos, _ = s.Positions(ctx)
	if _, ok := pos["people"]; ok || len(st.Rows(t, s, "people")) != 0 || pos["other"] != 3 {
		t.Fatalf("after Reset: positions %v, %d rows", pos, len(st.Rows(t, s, "people")))
	}
	// A content-keyed table is keyed by the token.
	ct := &consumer.Table{Report: "goals", Columns: cols, Key: []string{event.ContentKey}}
	apply(&consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeTable, Table: ct},
		{Kind: consumer.ChangeUpsert, Table: ct, Token: "h0123456789abcdef0123456789abcdef", Row: row("1", "goal")},
		{Kind: consumer.ChangeUpsert, Table: ct, Token: "h0123456789abcdef0123456789abcdef-2", Row: row("1", "goal")},
	}})
	if n := len(st.Rows(t, s, "goals")); n != 2 {
		t.Fatalf("content-keyed table has %d rows, want both identical rows", n)
	}
	apply(&consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeDelete, Table: ct, Token: "h0123456789abcdef0123456789abcdef-2", Row: row("1", "goal")}}})
	if n := len(st.Rows(t, s, "goals")); n != 1 {
		t.Fatalf("after deleting one of two identical rows: %d rows", n)
	}
}

// storeNewAndHeld applies batches of upserts that alternate between rows
// new to the table and rows it holds, alone and mixed in one batch (a
// store may guess which a batch holds from the batch before): every row
// ends as its last upsert had it, and each batch's position is committed.
func storeNewAndHeld(t *testing.T, st StoreTarget) {
	ctx := context.Background()
	s := st.Open(t, "new_and_held")
	cols := []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "name", Name: "Name", Type: event.TypeString}}
	table := &consumer.Table{Report: "people", Columns: cols, Key: []string{"id"}}
	want := map[string]string{}
	batches := [][]string{
		{"1", "2", "3"}, // new
		{"4", "5"},      // new
		{"2", "6"},      // one held, one new
		{"7"},           // new
		{"8", "9", "1"}, // new, and held last
		{"3", "4"},      // held
		{"10"},          // new
		{"11", "10"},    // new, and one held since the batch before
	}
	for i, ids := range batches {
		var changes []consumer.Change
		if i == 0 {
			changes = append(changes, consumer.Change{Kind: consumer.ChangeTable, Table: table})
		}
		for _, id := range ids {
			name := fmt.Sprintf("name %s of batch %d", id, i)
			want[id] = name
			changes = append(changes, consumer.Change{Kind: consumer.ChangeUpsert, Table: table, Token: id,
				Row: event.Row{"id": event.NumberValue(id), "name": event.TextValue(name)}})
		}
		if err := s.Apply(ctx, &consumer.Batch{Changes: changes, Positions: map[string]uint64{"people": uint64(i + 1)}}); err != nil {
			t.Fatalf("batch %d (%v): %v", i, ids, err)
		}
		pos, err := s.Positions(ctx)
		if err != nil || pos["people"] != uint64(i+1) {
			t.Fatalf("after batch %d: positions %v, %v", i, pos, err)
		}
		got := map[string]string{}
		for _, r := range st.Rows(t, s, "people") {
			got[r["id"].Raw] = r["name"].Raw
		}
		if !maps.Equal(got, want) {
			t.Fatalf("after batch %d (%v): rows %v, want %v", i, ids, got, want)
		}
	}
}

// storeHostileColumnKeys: column keys COMET may send that a database
// cannot keep as names as they are (longer than PostgreSQL's 63 bytes, two
// of them alike in their first 63, one cut inside a character; keys that
// differ only in case, for SQLite), beside one that is SQL, are stored,
// updated, added to a table, bulk-loaded and read back under their keys. (A key with a NUL byte never reaches a sink: the
// producer refuses the page.)
func storeHostileColumnKeys(t *testing.T, st StoreTarget) {
	ctx := context.Background()
	s := st.Open(t, "hostile_keys")
	rr, ok := s.(RowReader)
	if !ok {
		t.Skip("the store reads no rows back")
	}
	long := strings.Repeat("c", 63)
	keys := []string{long + "_one", long + "_two", `x"; DROP TABLE people; --`, "Ünïcødé " + strings.Repeat("é", 40), "amount", "Amount"}
	cols := []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}}
	for i, k := range keys {
		cols = append(cols, event.Column{Key: k, Name: fmt.Sprint("Column ", i), Type: event.TypeString})
	}
	table := &consumer.Table{Report: "people", Columns: cols, Key: []string{"id"}}
	row := func(id, tag string, t *consumer.Table) consumer.Change {
		r := event.Row{"id": event.NumberValue(id)}
		for i, c := range t.Columns[1:] {
			r[c.Key] = event.TextValue(fmt.Sprintf("%s %d of %s", tag, i, id))
		}
		return consumer.Change{Kind: consumer.ChangeUpsert, Table: t, Token: id, Row: r}
	}
	want := map[string]event.Row{}
	apply := func(what string, changes ...consumer.Change) {
		t.Helper()
		if err := s.Apply(ctx, &consumer.Batch{Changes: changes, Positions: map[string]uint64{"people": 1}}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, ch := range changes {
			switch ch.Kind {
			case consumer.ChangeUpsert:
				want[ch.Token] = ch.Row
			case consumer.ChangeDelete:
				delete(want, ch.Token)
			}
		}
	}
	check := func(what string) {
		t.Helper()
		rows, _, err := rr.ReadRows(ctx, "people")
		if err != nil {
			t.Fatalf("%s: ReadRows: %v", what, err)
		}
		if len(rows) != len(want) {
			t.Fatalf("%s: %d rows, want %d", what, len(rows), len(want))
		}
		for _, r := range rows {
			w := want[r["id"].Raw]
			for _, c := range table.Columns {
				if k := c.Key; k != "id" && !r[k].Equal(w[k]) && !(w[k].IsNull() && r[k].IsNull()) {
					t.Errorf("%s: row %s column %q = %+v, want %+v", what, r["id"].Raw, k, r[k], w[k])
				}
			}
		}
	}
	apply("create", consumer.Change{Kind: consumer.ChangeTable, Table: table}, row("1", "a", table), row("2", "a", table))
	check("after the first rows")
	apply("update", row("1", "b", table), consumer.Change{Kind: consumer.ChangeDelete, Table: table, Token: "2", Row: event.Row{"id": event.NumberValue("2")}})
	check("after an update and a delete")
	// AMOUNT differs only in case from amount and Amount, which the table
	// holds already.
	wider := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: append(slices.Clone(cols),
		event.Column{Key: long + "_three", Name: "Three", Type: event.TypeString}, event.Column{Key: "AMOUNT", Name: "AMOUNT", Type: event.TypeString})}
	table = wider
	apply("a column added", consumer.Change{Kind: consumer.ChangeTable, Table: wider}, row("3", "c", wider))
	check("after a column was added")
	if tables, err := s.Tables(ctx); err != nil || tables["people"] == nil || len(tables["people"].Columns) != len(wider.Columns) {
		t.Fatalf("tables %v, %v: want people with %d columns", tables, err, len(wider.Columns))
	} else {
		for i, c := range tables["people"].Columns {
			if c.Key != wider.Columns[i].Key {
				t.Errorf("column %d of the layout is %q, want %q", i, c.Key, wider.Columns[i].Key)
			}
		}
	}
	bl, ok := s.(consumer.BulkLoader)
	if !ok {
		return
	}
	ld, err := bl.BeginLoad(ctx, wider)
	if err != nil {
		t.Fatal(err)
	}
	clear(want)
	loaded := []consumer.Change{row("7", "d", wider), row("8", "d", wider)}
	if err := ld.Write(ctx, batch(wider, loaded...)); err != nil {
		t.Fatal(err)
	}
	if err := ld.Commit(ctx, map[string]uint64{"people": 9}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range loaded {
		want[ch.Token] = ch.Row
	}
	check("after a bulk load")

	// A bootstrap takes the producer's column order, which may put the
	// keys alike but for case the other way round than the table has them.
	// Loaded again and again (it failed at random when it renamed columns)
	// and read back by a store opened afresh, every value stays under its key.
	reordered := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: slices.Clone(wider.Columns)}
	slices.Reverse(reordered.Columns[1:])
	for round := range 5 {
		lt := []*consumer.Table{reordered, wider}[round%2]
		ld, err := bl.BeginLoad(ctx, lt)
		if err != nil {
			t.Fatalf("load %d, columns in another order: %v", round, err)
		}
		loaded := []consumer.Change{row("7", fmt.Sprint("e", round), lt), row("9", fmt.Sprint("e", round), lt)}
		if err := ld.Write(ctx, batch(lt, loaded...)); err != nil {
			t.Fatal(err)
		}
		if err := ld.Commit(ctx, map[string]uint64{"people": uint64(10 + round)}); err != nil {
			t.Fatal(err)
		}
		clear(want)
		for _, ch := range loaded {
			want[ch.Token] = ch.Row
		}
		check(fmt.Sprintf("after load %d, columns in another order", round))
	}
	s = st.Open(t, "hostile_keys")
	rr = s.(RowReader)
	check("read by a store opened again")
	apply("an update after the loads", row("9", "f", table))
	check("after an update after the loads")
}

// storeConverge materializes a producer's stream into the store while the
// data changes.
func storeConverge(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t,
		cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 150},
		cometstreamtest.Report{Name: "matches", Kind: cometstreamtest.Matches, Rows: 60},
		cometstreamtest.Report{Name: "fees", Kind: cometstreamtest.Fees, Rows: 40},
		cometstreamtest.Report{Name: "events", Kind: cometstreamtest.Events, Rows: 50},
	)
	w.SettleAll()
	s := st.Open(t, "main")
	m := materialize(t, w, s)
	waitStore(t, w, st, s)

	rng := rand.New(rand.NewPCG(8, 9))
	for i := range 12 {
		for _, r := range w.Reports() {
			switch rng.IntN(4) {
			case 0:
				w.Insert(r, 1+rng.IntN(3))
			case 1:
				w.Update(r, 1+rng.IntN(4))
			case 2:
				w.Delete(r, 1)
			}
		}
		if i == 5 {
			w.AddColumn("matches", "referee", "Referee")
		}
		for _, r := range w.Reports() {
			w.Poll(r)
		}
		if rng.IntN(3) == 0 {
			// The materializer stops and starts again from the store's own
			// positions.
			m.stop()
			s = st.Open(t, "main")
			m = materialize(t, w, s)
		}
	}
	w.SettleAll()
	waitStore(t, w, st, s)
	for _, row := range st.Rows(t, s, "matches") {
		if _, ok := row["referee"]; !ok {
			t.Fatalf("a row of matches lacks the column added mid-stream: %v", row)
		}
	}
	m.stop()

	// A store behind the retention: while its materializer is stopped, rows
	// change and the stream drops the events, keeping only the last passes'
	// report events. Started again, it must not skip what it never saw: the
	// reports it may have missed are loaded again from the snapshot.
	ctx := context.Background()
	trim := func(n int64) { t.Helper(); trimStream(t, w, n) }
	w.Update("persons", 4)
	w.Delete("matches", 2)
	w.Insert("fees", 3)
	w.SettleAll()
	for _, r := range w.Reports() {
		w.Poll(r) // a pass with nothing to publish but its synced event
	}
	trim(int64(len(w.Reports())))
	s = st.Open(t, "main")
	m = materialize(t, w, s)
	waitStore(t, w, st, s)
	m.stop()

	// Replay into a new store after the stream was trimmed to its tail: the
	// new store bootstraps from the snapshot and ends equal.
	trim(10)
	w.Update("persons", 3)
	w.Delete("fees", 1)
	w.SettleAll()
	fresh := st.Open(t, "replayed")
	m2 := materialize(t, w, fresh)
	waitStore(t, w, st, fresh)
	m2.stop()

	// Reports reset (as --from-start does) are bootstrapped again, into
	// the tables they emptied.
	for _, r := range []string{"persons", "events"} {
		if err := fresh.Reset(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	m3 := materialize(t, w, fresh)
	waitStore(t, w, st, fresh)
	m3.stop()
}

// running is a materializer running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
	t      *testing.T
}

// stop stops the materializer and waits for it; it may be called again.
func (r *running) stop() {
	r.t.Helper()
	r.once.Do(func() {
		r.cancel()
		<-r.done
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			r.t.Errorf("Materialize: %v", r.err)
		}
	})
}

func materialize(t *testing.T, w *cometstreamtest.World, s consumer.Store) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), t: t}
	go func() {
		defer close(r.done)
		r.err = consumer.Materialize(ctx, consumer.MaterializeConfig{JetStream: w.JetStream(), Durable: "sinktest", Store: s})
	}()
	t.Cleanup(r.stop)
	return r
}

// waitStore waits until every report's table equals the simulated rows.
func waitStore(t *testing.T, w *cometstreamtest.World, st StoreTarget, s consumer.Store) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var diffs []string
		for _, r := range w.Reports() {
			if d := storeDiff(w.Columns(r), w.Key(r), w.Rows(r), st.Rows(t, s, r)); d != "" {
				diffs = append(diffs, r+": "+d)
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never converged:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storeDiff compares rows read back from a store with the report's, as
// multisets matched by key (by content for content-keyed reports).
func storeDiff(cols []event.Column, key []string, want, got []event.Row) string {
	keyOf := func(r event.Row) string {
		if len(key) == 1 && key[0] == event.ContentKey {
			var parts []string
			for _, c := range cols {
				parts = append(parts, c.Key+"="+valueText(c.Type, r[c.Key]))
			}
			return strings.Join(parts, ";")
		}
		texts := make([]string, len(key))
		for i, k := range key {
			texts[i] = valueText(columnType(cols, k), r[k])
		}
		return strings.Join(texts, "/")
	}
	byKey := map[string][]event.Row{}
	for _, r := range got {
		byKey[keyOf(r)] = append(byKey[keyOf(r)], r)
	}
	var problems []string
	for _, w := range want {
		k := keyOf(w)
		rs := byKey[k]
		if len(rs) == 0 {
			problems = append(problems, "missing row "+k)
			continue
		}
		if !sameRow(cols, rs[0], w) {
			problems = append(problems, fmt.Sprintf("row %s differs: got %v, want %v", k, rs[0], w))
		}
		byKey[k] = rs[1:]
	}
	var extra []string
	for k, rs := range byKey {
		for range rs {
			extra = append(extra, "extra row "+k)
		}
	}
	sort.Strings(extra)
	problems = append(problems, extra...)
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("… %d more", len(problems)-5))
	}
	return strings.Join(problems, "; ")
}

func columnType(cols []event.Column, key string) event.ColumnType {
	for _, c := range cols {
		if c.Key == key {
			return c.Type
		}
	}
	return event.TypeString
}

// valueText renders a value for matching: numbers by value, so a store
// that rounds matches.
func valueText(t event.ColumnType, v event.Value) string {
	if v.IsNull() {
		return "<null>"
	}
	if t.Numeric() {
		return text(numberOf(v.Raw))
	}
	return v.Raw
}

// sameRow compares a row read back with the report's, column by column.
func sameRow(cols []event.Column, got, want event.Row) bool {
	for _, c := range cols {
		g := any(nil)
		if v := got[c.Key]; !v.IsNull() {
			g = v.Raw
		}
		if !sameValue(c.Type, want[c.Key], g) {
			return false
		}
	}
	return true
}

// numberOf parses a number literal for matching by value.
func numberOf(s string) any {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return f
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
