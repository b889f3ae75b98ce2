package sinktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
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
	for _, c := range []struct {
		name string
		run  func(*testing.T, StoreTarget)
	}{
		{"rules", storeRules},
		{"new-and-held-rows", storeNewAndHeld},
		{"hostile-column-keys", storeHostileColumnKeys},
		{"bulk-load", storeBulkLoad},
		{"bootstrap", storeBootstrap},
		{"converge", storeConverge},
		{"behind-while-running", storeBehindWhileRunning},
		{"no-restart-loop", storeNoRestartLoop},
		{"failing", storeFailing},
		{"pass-under-way-load", passUnderWayLoad},
		{"pass-under-way-new-store", passUnderWayNewStore},
		{"pass-under-way-stopped", passUnderWayStopped},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, st) })
	}
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
