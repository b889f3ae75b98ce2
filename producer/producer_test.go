package producer

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

func TestFirstPassThenNoChange(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 120})
	e.open(e.reportConfig("persons"))
	receipt := e.poll("persons")

	evs := e.events()
	if got := count(evs); got[event.TypeSchema] != 1 || got[event.TypeCreated] != 120 || got[event.TypeSynced] != 1 || len(evs) != 122 {
		t.Fatalf("first pass published %v", got)
	}
	if evs[0].Type != event.TypeSchema || evs[len(evs)-1].Type != event.TypeSynced {
		t.Errorf("order: first %s, last %s", evs[0].Type, evs[len(evs)-1].Type)
	}
	if cols := evs[0].Schema.Columns; len(cols) != 10 || cols[0].Key != "personId" || cols[3].Type != event.TypeDate || evs[0].Schema.Previous != nil {
		t.Errorf("schema %+v", evs[0].Schema)
	}
	want := e.want("persons")
	ids := map[string]bool{}
	for _, ev := range evs[1:121] {
		if ev.MsgID != ev.ID || ids[ev.ID] {
			t.Fatalf("event %s: Nats-Msg-Id %q, duplicate id %v", ev.Subject, ev.MsgID, ids[ev.ID])
		}
		ids[ev.ID] = true
		if ev.Subject != "comet.persons.row.created."+ev.Event.Subject {
			t.Errorf("subject %s for token %s", ev.Subject, ev.Event.Subject)
		}
		if ev.Source != "comet://"+strings.TrimPrefix(e.base, "http://")+"/persons" {
			t.Errorf("source %s", ev.Source)
		}
		after := canonical(t, ev.Row.After)
		if after != want[ev.Event.Subject] || ev.Row.Before != nil || ev.Row.Key["personId"].Raw != ev.Event.Subject {
			t.Errorf("created %s: after %s, want %s; key %v", ev.Event.Subject, after, want[ev.Event.Subject], ev.Row.Key)
		}
		if ev.Row.Sync != receipt.Sync {
			t.Errorf("sync %s, receipt %s", ev.Row.Sync, receipt.Sync)
		}
	}
	s := evs[len(evs)-1].Synced
	if !s.Consistent || s.Created != 120 || s.Rows != 120 || s.TotalSize != 120 || s.Pages != 5 || s.Deleted != 0 || s.Requests < 5 {
		t.Errorf("receipt %+v", s)
	}
	e.assertKV("persons")

	kvSeq := e.kvLastSeq("persons")
	e.poll("persons")
	evs2 := since(e.events(), evs[len(evs)-1].Seq)
	if len(evs2) != 1 || evs2[0].Type != event.TypeSynced || !evs2[0].Synced.Consistent || evs2[0].Synced.Created+evs2[0].Synced.Updated+evs2[0].Synced.Deleted != 0 {
		t.Fatalf("second pass published %v", count(evs2))
	}
	if got := e.kvLastSeq("persons"); got != kvSeq {
		t.Errorf("a pass with no change wrote the bucket: last seq %d -> %d", kvSeq, got)
	}
}

func TestInsertUpdateDelete(t *testing.T) {
	e := newPolledPersons(t, 100)
	start := e.lastSeq()
	before := e.sim.Rows("persons")

	e.sim.Insert("persons", 1, 0)  // shifts every row down a position
	e.sim.UpdateAt("persons", 51)  // was row 50
	e.sim.Delete("persons", 1, 81) // was row 80
	updatedID, deletedID := before[50]["personId"].Raw, before[80]["personId"].Raw
	e.poll("persons")
	e.poll("persons") // confirms the delete

	evs := since(e.events(), start)
	rowEvents := map[event.Type][]streamEvent{}
	for _, ev := range evs {
		if ev.Row != nil {
			rowEvents[ev.Type] = append(rowEvents[ev.Type], ev)
		}
	}
	if len(rowEvents[event.TypeCreated]) != 1 || len(rowEvents[event.TypeUpdated]) != 1 || len(rowEvents[event.TypeDeleted]) != 1 {
		t.Fatalf("row events %v, want one of each", count(evs))
	}
	inserted := e.sim.Rows("persons")[0]
	if c := rowEvents[event.TypeCreated][0]; c.Event.Subject != inserted["personId"].Raw || canonical(t, c.Row.After) != canonical(t, inserted) {
		t.Errorf("created %s %v", c.Event.Subject, c.Row.After)
	}
	u := rowEvents[event.TypeUpdated][0]
	if u.Event.Subject != updatedID || canonical(t, u.Row.Before) != canonical(t, before[50]) || canonical(t, u.Row.After) != canonical(t, e.sim.Rows("persons")[51]) {
		t.Errorf("updated %s: before %v after %v", u.Event.Subject, u.Row.Before, u.Row.After)
	}
	var changed []string
	for k, v := range u.Row.After {
		if !v.Equal(u.Row.Before[k]) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	got := slices.Clone(u.Row.Changed)
	slices.Sort(got)
	if len(changed) == 0 || !slices.Equal(got, changed) {
		t.Errorf("changed %v, want %v", u.Row.Changed, changed)
	}
	d := rowEvents[event.TypeDeleted][0]
	if d.Event.Subject != deletedID || canonical(t, d.Row.Before) != canonical(t, before[80]) || d.Row.After != nil || d.Row.Key["personId"].Raw != deletedID {
		t.Errorf("deleted %s: %+v", d.Event.Subject, d.Row)
	}
	e.assertKV("persons")
}

// TestRowsShiftedDuringPassesNeverFalselyDeleted changes the data between
// the pages of 200 passes — inserts at the top, deletes anywhere, updates —
// and checks that no deleted event ever names a row that still exists.
func TestRowsShiftedDuringPassesNeverFalselyDeleted(t *testing.T) {
	e := newPolledPersons(t, 150, func(rc *ReportConfig) { rc.PageSize = 20; rc.MaxDeleteFraction = 1 })
	// Each pass gets one change, landing right after a random page is
	// served (or none, a quarter of the time).
	shift := newPageShifter(e, 7, func(report string, kind int, rng *rand.Rand) {
		switch kind {
		case 0:
			e.sim.Insert(report, 1+rng.IntN(3), 0)
		case 1:
			e.sim.Delete(report, 1, rng.IntN(max(e.sim.Len(report), 1)))
		case 2, 3: // a delete above and an insert below: counts stay the same
			e.sim.Delete(report, 1, rng.IntN(20))
			e.sim.Insert(report, 1, -1)
		case 4:
			e.sim.Update(report, 1)
		}
	})
	last := uint64(0)
	deletes := 0
	for i := range 200 {
		shift.next(6, 12)
		if _, err := e.p.Poll(context.Background(), "persons"); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
		exists := map[string]bool{}
		for _, row := range e.sim.Rows("persons") {
			exists[row["personId"].Raw] = true
		}
		evs := e.eventsAfter(last)
		for _, ev := range evs {
			if ev.Type == event.TypeDeleted {
				deletes++
				if exists[ev.Event.Subject] {
					t.Fatalf("pass %d deleted %s, which still exists", i, ev.Event.Subject)
				}
			}
		}
		last = evs[len(evs)-1].Seq
	}
	if deletes == 0 {
		t.Fatal("no delete was ever published: the test exercised nothing")
	}
	e.sim.OnPage(nil)
	e.poll("persons")
	e.poll("persons")
	e.assertKV("persons")
	final := testenv.Chains(t, e.events())["persons"]
	if d := testenv.Diff(final, e.want("persons")); d != "" {
		t.Errorf("replaying the stream does not give the report:\n%s", d)
	}
}

func TestEmptiedReportHoldsDeletes(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "fees", Kind: "fees", Rows: 60})
	clock := newTestClock()
	e.openWith(func(c *Config) { c.Now = clock.Now }, e.reportConfig("fees"))
	e.poll("fees")
	ctx := context.Background()

	// Nothing held: a release is refused, and arms nothing.
	if _, err := ReleaseDeletes(ctx, e.js, "comet", "fees", 0, clock.Now()); !errors.Is(err, ErrNothingHeld) {
		t.Fatalf("release with nothing held: %v", err)
	}
	state := e.stateBucket()
	if _, err := state.Get(ctx, event.AllowDeletesKey("fees")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a refused release left a record: %v", err)
	}

	start := e.lastSeq()
	e.sim.Truncate("fees")
	for range 3 {
		e.poll("fees")
	}
	evs := since(e.events(), start)
	c := count(evs)
	if c[event.TypeHeld] != 1 || c[event.TypeDeleted] != 0 {
		t.Fatalf("events %v: want one held and no deletes", c)
	}
	var held *event.Held
	for _, ev := range evs {
		if ev.Held != nil {
			held = ev.Held
		}
	}
	if held.WouldDelete != 60 || held.RowsBefore != 60 || held.Threshold != 0.5 || held.Phase != event.HoldStarted || held.Hold == "" {
		t.Errorf("held %+v", held)
	}
	if len(e.kv("fees")) != 60 {
		t.Errorf("bucket has %d rows, want 60 kept", len(e.kv("fees")))
	}
	if got := testutil.ToFloat64(e.p.m.heldDeletes.WithLabelValues("fees")); got != 60 {
		t.Errorf("held metric %v", got)
	}
	if !strings.Contains(e.logs.String(), "deletes held") {
		t.Error("no log line about held deletes")
	}

	// A release that expired before a pass used it applies to nothing.
	if _, err := ReleaseDeletes(ctx, e.js, "comet", "fees", time.Minute, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute)
	if s := e.poll("fees"); s.Deleted != 0 || s.DeletesHeld != 60 {
		t.Fatalf("after an expired release: %+v", s)
	}
	if _, err := state.Get(ctx, event.AllowDeletesKey("fees")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the expired release was not discarded: %v", err)
	}

	// A release names the hold: it does not outlive it.
	rel, err := ReleaseDeletes(ctx, e.js, "comet", "fees", 0, clock.Now())
	if err != nil || rel.Held != 60 || rel.Hold != held.Hold || !rel.Expires.Equal(clock.Now().Add(DefaultReleaseTTL)) {
		t.Fatalf("release %+v, %v", rel, err)
	}
	s := e.poll("fees")
	if s.Deleted != 60 || s.DeletesHeld != 0 {
		t.Errorf("after release: %+v", s)
	}
	e.assertKV("fees")
	if _, err := state.Get(ctx, event.AllowDeletesKey("fees")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the release was not consumed: %v", err)
	}
	var last *event.Held
	for _, ev := range e.events() {
		if ev.Held != nil {
			last = ev.Held
		}
	}
	if last.Phase != event.HoldReleased || last.Hold != held.Hold {
		t.Errorf("last held event %+v: want the release of hold %s", last, held.Hold)
	}
}

// TestHoldPublishesStartAndEndOnly: a hold whose size changes pass after
// pass publishes one held event when it starts and one when it ends, and a
// release given for one hold does not apply to the next.
func TestHoldPublishesStartAndEndOnly(t *testing.T) {
	e := newPolledPersons(t, 40)
	start := e.lastSeq()
	e.sim.Delete("persons", 30, 0)
	for range 2 {
		e.poll("persons")
	}
	for range 4 {
		e.sim.Delete("persons", 1, 0) // the hold grows
		e.poll("persons")
		e.poll("persons")
	}
	held := func() []*event.Held {
		var out []*event.Held
		for _, ev := range since(e.events(), start) {
			if ev.Held != nil {
				out = append(out, ev.Held)
			}
		}
		return out
	}
	if h := held(); len(h) != 1 || h[0].Phase != event.HoldStarted {
		t.Fatalf("held events while the hold changed size: %+v", h)
	}
	first := held()[0].Hold
	// Two more rows go missing (suspects now, confirmed by the next pass);
	// the release is for the 34 held: it does not cover 36.
	e.sim.Delete("persons", 2, 0)
	e.poll("persons")
	if _, err := ReleaseDeletes(context.Background(), e.js, "comet", "persons", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := e.poll("persons"); s.Deleted != 0 || s.DeletesHeld != 36 {
		t.Fatalf("a release for fewer deletes applied: %+v", s)
	}
	// The report grows: the deletes fall under the threshold and are made,
	// the hold ends, and the release, for the first hold, cannot apply to
	// the next.
	e.sim.Insert("persons", 36, 0)
	if s := e.poll("persons"); s.Created != 36 || s.Deleted != 36 {
		t.Fatalf("under the threshold: %+v", s)
	}
	if h := held(); len(h) != 2 || h[1].Phase != event.HoldEnded || h[1].Hold != first {
		t.Fatalf("held events: %+v, want started then ended", h)
	}
	mark := e.lastSeq()
	e.sim.Truncate("persons")
	for range 3 {
		e.poll("persons")
	}
	if h := held(); len(h) != 3 || h[2].Phase != event.HoldStarted || h[2].Hold == first {
		t.Fatalf("held events %+v: want a new hold", h)
	}
	if c := count(since(e.events(), mark)); c[event.TypeDeleted] != 0 {
		t.Fatalf("%d deletes: the release of the first hold applied to the second", c[event.TypeDeleted])
	}
	if _, err := e.stateBucket().Get(context.Background(), event.AllowDeletesKey("persons")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the release of a hold that ended was kept: %v", err)
	}
}

// TestLongInconsistencyIsLoud: a report whose passes stay inconsistent
// (here a row without a key value) never gets its deletes: the count of
// such passes in a row is in its state record and a gauge, and from
// InconsistentAlarm passes on the log says so as an error. A consistent
// pass sets it back to 0.
func TestLongInconsistencyIsLoud(t *testing.T) {
	e := newPolledPersons(t, 30)
	inconsistent := func() (float64, int) {
		t.Helper()
		st, _ := e.state("persons")
		return testutil.ToFloat64(e.p.m.inconsistent.WithLabelValues("persons")), st.Inconsistent
	}
	if g, n := inconsistent(); g != 0 || n != 0 {
		t.Fatalf("after a consistent pass: gauge %v, record %d", g, n)
	}
	if err := e.sim.Poison("persons", 3, "personId", "null"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= InconsistentAlarm; i++ {
		if s := e.poll("persons"); s.Consistent || s.InvalidRows != 1 {
			t.Fatalf("pass %d: %+v, want inconsistent with an invalid row", i, s)
		}
		if g, n := inconsistent(); g != float64(i) || n != i {
			t.Fatalf("after %d inconsistent passes: gauge %v, record %d", i, g, n)
		}
		loud := strings.Count(e.logs.String(), `"level":"ERROR","msg":"no consistent pass for`)
		if want := map[bool]int{true: 1}[i >= InconsistentAlarm]; loud != want {
			t.Fatalf("after %d inconsistent passes the error was logged %d times, want %d", i, loud, want)
		}
	}
	// One more pass is a warning again, not another error.
	e.poll("persons")
	if n := strings.Count(e.logs.String(), `"level":"ERROR","msg":"no consistent pass for`); n != 1 {
		t.Fatalf("after %d inconsistent passes the error was logged %d times, want once", InconsistentAlarm+1, n)
	}
	// A restarted producer shows the count before its first pass.
	e.open(e.reportConfig("persons"))
	if g, _ := inconsistent(); g != float64(InconsistentAlarm+1) {
		t.Fatalf("after a restart the gauge is %v, want %d", g, InconsistentAlarm+1)
	}
	e.sim.Delete("persons", 1, 3) // the row without a key goes
	if s := e.poll("persons"); !s.Consistent {
		t.Fatalf("without the keyless row: %+v", s)
	}
	if g, n := inconsistent(); g != 0 || n != 0 {
		t.Fatalf("after a consistent pass again: gauge %v, record %d", g, n)
	}
}

func TestRevokedKeyThenRestored(t *testing.T) {
	e := newPolledPersons(t, 40)
	start := e.lastSeq()
	e.sim.Revoke("persons", 410)
	for range 3 {
		if _, err := e.p.Poll(context.Background(), "persons"); err == nil {
			t.Fatal("a pass over a revoked report succeeded")
		}
	}
	evs := since(e.events(), start)
	if len(evs) != 1 || evs[0].Unavailable == nil || evs[0].Unavailable.Status != 410 {
		t.Fatalf("events while revoked: %v", count(evs))
	}
	e.assertKV("persons")
	e.sim.Restore("persons")
	e.poll("persons")
	e.poll("persons")
	evs = since(e.events(), evs[0].Seq)
	if c := count(evs); c[event.TypeSynced] != 2 || len(evs) != 2 {
		t.Fatalf("after recovery: %v, want only receipts", c)
	}
	e.assertKV("persons")
}

// rowOrSchema leaves out the receipts.
func rowOrSchema(evs []streamEvent) []streamEvent {
	var out []streamEvent
	for _, ev := range evs {
		if ev.Type != event.TypeSynced {
			out = append(out, ev)
		}
	}
	return out
}

func TestSchemaChangeUpdatesEveryRow(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "matches", Kind: "matches", Rows: 30})
	e.open(e.reportConfig("matches"))
	e.poll("matches")
	start := e.lastSeq()
	e.sim.AddColumn("matches", "referee", "Referee")
	// The pass that first sees the new columns only reads every page; the
	// next publishes them.
	if s := e.poll("matches"); s.Created+s.Updated+s.Deleted != 0 {
		t.Fatalf("the pass that saw the new columns first published %+v", s)
	}
	if c := count(since(e.events(), start)); c[event.TypeSynced] != 1 || len(c) != 1 {
		t.Fatalf("the pass that saw the new columns first published %v", c)
	}
	if wait := e.p.nextWait(e.p.reports["matches"], nil); wait != confirmDelay {
		t.Errorf("the pass that saw the new columns on every page asked for the next pass in %s, not at once", wait)
	}
	e.poll("matches")
	evs := rowOrSchema(since(e.events(), start))
	if c := count(evs); c[event.TypeSchema] != 1 || c[event.TypeUpdated] != 30 {
		t.Fatalf("events %v", c)
	}
	if evs[0].Schema == nil || len(evs[0].Schema.Previous) != 9 || len(evs[0].Schema.Columns) != 10 {
		t.Errorf("schema event %+v", evs[0])
	}
	for _, ev := range evs {
		if ev.Type == event.TypeUpdated && !slices.Equal(ev.Row.Changed, []string{"referee"}) {
			t.Fatalf("changed %v", ev.Row.Changed)
		}
	}
	e.assertKV("matches")
}

func TestContentKey(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "matches", Kind: "matches", Rows: 20})
	e.open(e.reportConfig("matches", func(rc *ReportConfig) { rc.Key = []string{"*"} }))
	// A content-keyed row is published when two consistent passes agree on
	// it: the first pass publishes no row, the confirming one all of them.
	if s := e.poll("matches"); s.Created != 0 || !s.Consistent {
		t.Fatalf("first pass %+v: want no row until a second pass confirms", s)
	}
	if s := e.poll("matches"); s.Created != 20 {
		t.Fatalf("confirming pass created %d, want 20", s.Created)
	}
	start := e.lastSeq()
	e.sim.UpdateAt("matches", 3)
	e.poll("matches")
	e.poll("matches")
	c := count(since(e.events(), start))
	if c[event.TypeCreated] != 1 || c[event.TypeDeleted] != 1 || c[event.TypeUpdated] != 0 {
		t.Fatalf("a changed row under key * gave %v, want one deleted and one created", c)
	}
	if n := len(e.kv("matches")); n != 20 {
		t.Errorf("bucket has %d rows", n)
	}
	for tok := range e.kv("matches") {
		if !strings.HasPrefix(tok, "h") || len(tok) != 33 {
			t.Errorf("content token %q", tok)
		}
	}
}

// TestRecoveryAppliesTheStreamTail rolls the snapshot back to before a pass,
// as if the producer died after publishing and before writing the bucket,
// and checks that a new producer catches up from the stream instead of
// publishing the changes again.
func TestRecoveryAppliesTheStreamTail(t *testing.T) {
	e := newPolledPersons(t, 80)
	published := len(e.events())

	ctx := context.Background()
	kv, _ := e.js.KeyValue(ctx, event.BucketName("comet", "persons"))
	if err := kv.Delete(ctx, "100003"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "100004"); err != nil {
		t.Fatal(err)
	}
	st, _ := e.state("persons")
	st.Checkpoint = 1 // only the schema event applied
	b, _ := json.Marshal(st)
	e.stateBucket().Put(ctx, "persons", b)

	e.open(e.reportConfig("persons"))
	e.assertKV("persons")
	e.poll("persons")
	evs := e.events()
	if len(evs) != published+1 || evs[len(evs)-1].Type != event.TypeSynced {
		t.Fatalf("after recovery the pass published %v", count(evs[published:]))
	}
}

// TestRecoveryLeavesNoConsumer: loading the snapshot and applying the
// stream's tail leave no consumer on the event stream or on any bucket.
func TestRecoveryLeavesNoConsumer(t *testing.T) {
	big := func(rc *ReportConfig) { rc.PageSize = 1000 }
	e := newPolledPersons(t, 2500, big)
	// A restart whose recovery reads more than one batch from both: every
	// event since the start, and a snapshot of 2,500 rows.
	ctx := context.Background()
	st, rev := e.state("persons")
	st.Checkpoint = 0
	b, _ := json.Marshal(st)
	if _, err := e.stateBucket().Update(ctx, "persons", b, rev); err != nil {
		t.Fatal(err)
	}
	e.open(e.reportConfig("persons", big))
	e.assertKV("persons")

	names := e.js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if len(streams) < 3 {
		t.Fatalf("streams %v: want the events, the state and the snapshot", streams)
	}
	for _, name := range streams {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for c := range s.ListConsumers(ctx).Info() {
			t.Errorf("stream %s keeps consumer %s after recovery (created %s)", name, c.Name, c.Created.Format(time.RFC3339Nano))
		}
	}
}

// TestRecoveryAfterTrimming: a stream trimmed past a report's checkpoint
// (what retention does while another report keeps publishing) loses
// nothing of a report that stopped cleanly: the producer recovers, says so
// at info level, and publishes nothing again. Without configured limits,
// the same gap is someone else's doing, and a warning.
func TestRecoveryAfterTrimming(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 40}, simulator.ReportSpec{Name: "fees", Kind: "fees", Rows: 30})
	retention := func(c *Config) { c.MaxAge = time.Hour }
	reports := []ReportConfig{e.reportConfig("persons"), e.reportConfig("fees")}
	e.openWith(retention, reports...)
	e.poll("persons")
	e.poll("fees")
	ctx := context.Background()
	s, err := e.js.Stream(ctx, "COMET")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	last := info.State.LastSeq
	// Retention leaves fees' receipt and removes everything before it:
	// persons' checkpoint, its receipt, is gone, and so are fees' rows.
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(last)); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(ctx); info.State.FirstSeq != last {
		t.Fatalf("the stream starts at %d after the purge, want %d", info.State.FirstSeq, last)
	}

	e.logs.Reset()
	e.openWith(retention, reports...)
	const info1, warning = "the stream's retention has removed events past the report's checkpoint", "the stream no longer holds every event"
	if logs := e.logs.String(); strings.Contains(logs, warning) || !strings.Contains(logs, `"level":"INFO","msg":"`+info1) || !strings.Contains(logs, `"report":"persons"`) {
		t.Errorf("recovery from a stream its retention trimmed: want the info line for persons and no warning:\n%s", logs)
	}
	e.assertKV("persons")
	e.assertKV("fees")
	e.poll("persons")
	e.poll("fees")
	for _, ev := range e.eventsAfter(last) {
		if ev.Type != event.TypeSynced || ev.Synced.Created+ev.Synced.Updated+ev.Synced.Deleted != 0 {
			t.Errorf("after recovery from a trimmed stream a pass published %s %s", ev.Type, ev.Subject)
		}
	}

	e.sim.Insert("fees", 3, 0)
	e.poll("fees")
	info, _ = s.Info(ctx)
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq)); err != nil {
		t.Fatal(err)
	}
	e.logs.Reset()
	e.openWith(func(*Config) {}, reports...)
	if logs := e.logs.String(); !strings.Contains(logs, `"level":"WARN","msg":"`+warning) {
		t.Errorf("recovery from a stream purged without configured limits did not warn:\n%s", logs)
	}
}

// TestRetentionIsTheConfiguration: the stream is created with the
// configured limits, a restart with other limits (or none) changes them on
// the server and says so, and one with the same limits changes nothing.
func TestRetentionIsTheConfiguration(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 10})
	limits := func(age time.Duration, size int64) func(*Config) {
		return func(c *Config) { c.MaxAge, c.MaxBytes = age, size }
	}
	e.openWith(limits(time.Hour, 64<<20), e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != time.Hour || c.MaxBytes != 64<<20 {
		t.Fatalf("created with max age %s, max bytes %d; want 1h, %d", c.MaxAge, c.MaxBytes, 64<<20)
	}
	if strings.Contains(e.logs.String(), "stream retention changed") {
		t.Errorf("a new stream's limits were logged as a change:\n%s", e.logs)
	}

	e.openWith(limits(3*time.Hour, 0), e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != 3*time.Hour || c.MaxBytes != -1 {
		t.Errorf("after a restart with 3h and no size limit: max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	if !strings.Contains(e.logs.String(), `"msg":"stream retention changed to the configuration's","stream":"COMET","max_age":"3h0m0s","max_bytes":"unlimited","was_max_age":"1h0m0s","was_max_bytes":"67108864"`) {
		t.Errorf("the change is not logged with the old and new limits:\n%s", e.logs)
	}

	// A limit set with the nats CLI is the configuration's to decide.
	cfg := e.streamConfig()
	cfg.MaxBytes = 1 << 30
	if _, err := e.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	e.openWith(func(*Config) {}, e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != 0 || c.MaxBytes != -1 {
		t.Errorf("unlimited in the configuration: max age %s, max bytes %d remain", c.MaxAge, c.MaxBytes)
	}

	before := strings.Count(e.logs.String(), "stream retention changed")
	e.openWith(func(*Config) {}, e.reportConfig("persons"))
	if after := strings.Count(e.logs.String(), "stream retention changed"); after != before {
		t.Errorf("a restart with the same limits changed the stream (%d change lines, were %d)", after, before)
	}

	if _, err := New(Config{Conn: e.nc, Stream: "COMET", Prefix: "comet", DuplicateWindow: time.Minute, MaxAge: time.Second}); err == nil || !strings.Contains(err.Error(), "shorter than the duplicate window") {
		t.Errorf("max age under the duplicate window: %v", err)
	}
}

func TestRefusesConflictingStreamAndChangedKey(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 5})
	ctx := context.Background()
	// The conflicting stream stays: deleting an account's last stream and
	// creating one at once races with the server's removal of the emptied
	// directories (nats-server 2.15.2 then fails the create).
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	p, _ := New(Config{Conn: e.nc, Stream: "OTHER", Prefix: "comet", Reports: []ReportConfig{e.reportConfig("persons")}})
	if err := p.Open(ctx); !errors.Is(err, ErrStreamConflict) || !strings.Contains(err.Error(), "other.>") {
		t.Fatalf("conflicting stream: %v", err)
	}
	if st, err := e.js.Stream(ctx, "OTHER"); err != nil || !slices.Equal(st.CachedInfo().Config.Subjects, []string{"other.>"}) {
		t.Fatalf("the refused producer changed the stream it refused: %v", err)
	}
	e.open(e.reportConfig("persons"))
	e.poll("persons")
	p, _ = New(Config{Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: []ReportConfig{e.reportConfig("persons", func(rc *ReportConfig) { rc.Key = []string{"lastName"} })}})
	if err := p.Open(ctx); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("changed key: %v", err)
	}
}

// TestAPIKeyAppearsNowhere runs passes that succeed and fail and looks for
// the API key in the stream, the buckets, the logs and the metrics.
func TestAPIKeyAppearsNowhere(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 30})
	e.open(e.reportConfig("persons"))
	key := e.sim.Key("persons")
	e.poll("persons")
	e.sim.Inject("persons", simulator.Fault{Status: 500, Count: 5})
	e.p.Poll(context.Background(), "persons")
	e.sim.Inject("persons", simulator.Fault{Count: 5})
	e.p.Poll(context.Background(), "persons")
	e.sim.Revoke("persons", 403)
	e.p.Poll(context.Background(), "persons")

	var everything strings.Builder
	for _, ev := range e.events() {
		everything.Write(ev.Raw)
	}
	for k, v := range e.kv("persons") {
		everything.WriteString(k + v)
	}
	st, _ := e.stateBucket().Get(context.Background(), "persons")
	everything.Write(st.Value())
	everything.WriteString(e.logs.String())
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		everything.WriteString(mf.String())
	}
	if !strings.Contains(everything.String(), "report unavailable") || !strings.Contains(everything.String(), "cometstream_comet_requests_total") {
		t.Fatal("the scan did not see the failures it should have")
	}
	if strings.Contains(everything.String(), key) {
		t.Fatal("the API key appears in what the producer wrote")
	}
}
