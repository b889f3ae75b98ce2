package sinktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
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
// (see its documentation) checked directly, then the store materialized
// from a real producer while the data changes and the materializer is
// stopped and restarted, a schema change, a content-keyed report, and a
// replay into a new store after the stream was trimmed. Every table must
// end equal to the simulated COMET row by row.
func RunStore(t *testing.T, st StoreTarget) {
	t.Run("rules", func(t *testing.T) { storeRules(t, st) })
	t.Run("converge", func(t *testing.T) { storeConverge(t, st) })
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

	// Replay into a new store after the stream was trimmed to its tail: the
	// new store bootstraps from the snapshot and ends equal.
	ctx := context.Background()
	stream, err := w.JetStream().Stream(ctx, event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgs = 10
	if _, err := w.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	w.Update("persons", 3)
	w.Delete("fees", 1)
	w.SettleAll()
	fresh := st.Open(t, "replayed")
	m2 := materialize(t, w, fresh)
	waitStore(t, w, st, fresh)
	m2.stop()
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
