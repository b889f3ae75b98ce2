package producer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// reorderer serves the simulator with the rows in another order while a
// pass is read: after page 0 is computed, the row at from moves to to, and
// after page 1 it moves back. The report never changes; only the order of
// its rows differs from one request to the next, as when COMET sorts by a
// column with ties. Requests for later pages wait until page 0 is served,
// so each page of the pass sees the order meant for it.
type reorderer struct {
	e        *env
	report   string
	mu       sync.Mutex
	from, to int           // -1: no move this pass
	served   chan struct{} // closed once page 0 is served and the rows moved
}

func newReorderer(e *env, report string) (*reorderer, string) {
	ro := &reorderer{e: e, report: report, from: -1}
	e.sim.OnPage(func(_ string, page int) {
		ro.mu.Lock()
		defer ro.mu.Unlock()
		if ro.from < 0 {
			return
		}
		switch page {
		case 0:
			if err := e.sim.Move(report, ro.from, ro.to); err != nil {
				e.t.Error(err)
			}
			close(ro.served)
		case 1:
			if err := e.sim.Move(report, ro.to, ro.from); err != nil {
				e.t.Error(err)
			}
		}
	})
	h := e.sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ro.mu.Lock()
		wait := ro.served
		ro.mu.Unlock()
		if wait != nil && !strings.Contains(r.URL.Path, "/run/0/") {
			<-wait
		}
		h.ServeHTTP(w, r)
	}))
	e.t.Cleanup(srv.Close)
	return ro, srv.URL
}

// pass polls once with the row at from moved to to between pages 0 and 1
// (from < 0: in order).
func (ro *reorderer) pass(from, to int) {
	ro.e.t.Helper()
	ro.mu.Lock()
	ro.from, ro.to, ro.served = from, to, nil
	if from >= 0 {
		ro.served = make(chan struct{})
	}
	ro.mu.Unlock()
	ro.e.poll(ro.report)
}

// TestContentKeyedReorderedNeverInvents: a content-keyed report of 8 rows
// on 2 pages, unchanged, served in a different order on each request. Two
// consecutive consistent passes each miss the same row, and each sees
// another row twice: every count matches, so each alone cannot tell. What
// they agree on is a delete, yet their rows differ: nothing may be
// published, in those passes or after.
func TestContentKeyedReorderedNeverInvents(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "events", Kind: "events", Rows: 8})
	ro, base := newReorderer(e, "events")
	e.open(e.reportConfig("events", func(rc *ReportConfig) {
		rc.Key, rc.PageSize, rc.MaxDeleteFraction, rc.Comet.BaseURL = []string{"*"}, 4, 1, base
	}))
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	if got := len(e.kv("events")); got != 8 {
		t.Fatalf("initial sync: %d rows in the bucket, want 8", got)
	}
	start := e.lastSeq()
	ro.pass(1, 7) // row 4 missed, row 1 twice
	ro.pass(2, 7) // row 4 missed, row 2 twice
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	if evs := rowEvents(e.eventsAfter(start)); len(evs) != 0 {
		for _, ev := range evs {
			t.Errorf("published %s %s", ev.Type, ev.Event.Subject)
		}
	}
	if got := len(e.kv("events")); got != 8 {
		t.Errorf("the bucket holds %d rows, want 8", got)
	}
	// Real changes still go through: two passes that agree publish them.
	start = e.lastSeq()
	if err := e.sim.Delete("events", 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Insert("events", 1, 0); err != nil {
		t.Fatal(err)
	}
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	if c := count(rowEvents(e.eventsAfter(start))); c[event.TypeDeleted] != 1 || c[event.TypeCreated] != 1 || len(c) != 2 {
		t.Errorf("a row deleted and one inserted published %v, want one of each", c)
	}
	if got := len(e.kv("events")); got != 8 {
		t.Errorf("the bucket holds %d rows, want 8", got)
	}
}

// TestRepeatedKeyReorderedNeverFlips: a report keyed by personId holds one
// key on two rows, the one that stands for it on page 1 and the other on
// page 0. A pass in which COMET serves the rows in another order misses the
// standing row and sees the other twice; it must not replace the standing
// row, and the passes after must publish nothing either. A real change to
// a row of the key is then published once.
func TestRepeatedKeyReorderedNeverFlips(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 8})
	e.shapes("persons", simulator.Shapes{RepeatKeys: 1})
	twins := func() (lo, hi int) {
		lo = -1
		for i, row := range e.sim.Rows("persons") {
			if testenv.Token(row, []string{"personId"}) == e.sim.RepeatedKeys("persons")[0] {
				if lo < 0 {
					lo = i
				} else {
					hi = i
				}
			}
		}
		return lo, hi
	}
	// The twins at positions 3 (page 0) and 4 (page 1), the standing one
	// at 4.
	lo, _ := twins()
	if err := e.sim.Move("persons", lo, 3); err != nil {
		t.Fatal(err)
	}
	if _, hi := twins(); hi != 4 {
		if err := e.sim.Move("persons", hi, 4); err != nil {
			t.Fatal(err)
		}
	}
	rows := e.sim.Rows("persons")
	if testenv.Canonical(rows[3]) > testenv.Canonical(rows[4]) {
		if err := e.sim.Move("persons", 4, 3); err != nil {
			t.Fatal(err)
		}
	}
	if lo, hi := twins(); lo != 3 || hi != 4 {
		t.Fatalf("twins at %d and %d, want 3 and 4", lo, hi)
	}
	ro, base := newReorderer(e, "persons")
	e.open(e.reportConfig("persons", func(rc *ReportConfig) { rc.PageSize, rc.Comet.BaseURL = 4, base }))
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	want := standing(e.sim, "persons")
	if d := testenv.Diff(e.kv("persons"), want); d != "" {
		t.Fatalf("initial sync:\n%s", d)
	}
	start := e.lastSeq()
	ro.pass(4, 0) // the standing twin missed, the other seen twice
	ro.pass(-1, 0)
	ro.pass(4, 0)
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	if evs := rowEvents(e.eventsAfter(start)); len(evs) != 0 {
		for _, ev := range evs {
			t.Errorf("published %s %s", ev.Type, ev.Event.Subject)
		}
	}
	if d := testenv.Diff(e.kv("persons"), want); d != "" {
		t.Errorf("after the reordered passes:\n%s", d)
	}
	// A real change to the standing row goes through, once.
	if err := e.sim.UpdateAt("persons", 4); err != nil {
		t.Fatal(err)
	}
	start = e.lastSeq()
	ro.pass(-1, 0)
	ro.pass(-1, 0)
	if c := count(rowEvents(e.eventsAfter(start))); c[event.TypeUpdated] != 1 || len(c) != 1 {
		t.Errorf("a change to the standing row published %v, want one update", c)
	}
	if d := testenv.Diff(e.kv("persons"), standing(e.sim, "persons")); d != "" {
		t.Errorf("after the change:\n%s", d)
	}
	// The key's other row deleted: three passes that see the key on one
	// row forget it as repeated, and publish nothing (its row stands).
	other := 3
	if rows := e.sim.Rows("persons"); testenv.Canonical(rows[3]) > testenv.Canonical(rows[4]) {
		other = 4
	}
	if err := e.sim.Delete("persons", 1, other); err != nil {
		t.Fatal(err)
	}
	start = e.lastSeq()
	for i := range forgetAfter {
		if len(e.p.reports["persons"].repeated) != 1 {
			t.Fatalf("after %d passes on one row the key is no longer known to repeat", i)
		}
		ro.pass(-1, 0)
	}
	if n := len(e.p.reports["persons"].repeated); n != 0 {
		t.Errorf("%d keys still known to repeat after %d passes saw the key on one row", n, forgetAfter)
	}
	ro.pass(-1, 0)
	if evs := rowEvents(e.eventsAfter(start)); len(evs) != 0 {
		t.Errorf("a key that stopped repeating published %v", count(evs))
	}
	if d := testenv.Diff(e.kv("persons"), standing(e.sim, "persons")); d != "" {
		t.Errorf("after the key stopped repeating:\n%s", d)
	}
}

// TestRepeatedKeyRevealedOneUpdateAPass: a key's row changes in the pass
// that also reveals a second row of it, on the next page. The pass
// publishes the first row's update as it arrives; the row the key comes
// to, the other one, is published by the next pass, which follows at once:
// one update of the key a pass, never two.
func TestRepeatedKeyRevealedOneUpdateAPass(t *testing.T) {
	e := newPolledPersons(t, 8, func(rc *ReportConfig) { rc.PageSize = 4 })
	e.shapes("persons", simulator.Shapes{RepeatKeys: 1})
	key := e.sim.RepeatedKeys("persons")[0]
	stored := e.kv("persons")[key]
	// The row the snapshot holds at position 3 (page 0), its new twin at 4
	// (page 1): they arrive in that order, whatever the shape shuffles
	// within a page.
	at := func(original bool) int {
		for i, row := range e.sim.Rows("persons") {
			if testenv.Token(row, []string{"personId"}) == key && (testenv.Canonical(row) == stored) == original {
				return i
			}
		}
		t.Fatalf("no %v row of key %s", original, key)
		return -1
	}
	for range 4 { // each move may shift the other row by one
		if err := e.sim.Move("persons", at(true), 3); err != nil {
			t.Fatal(err)
		}
		if err := e.sim.Move("persons", at(false), 4); err != nil {
			t.Fatal(err)
		}
	}
	if at(true) != 3 || at(false) != 4 {
		t.Fatalf("rows of the key at %d and %d, want 3 and 4", at(true), at(false))
	}
	// The first row changes, and sorts before its twin: the key comes to
	// the twin.
	for range 100 {
		if err := e.sim.UpdateAt("persons", 3); err != nil {
			t.Fatal(err)
		}
		if rows := e.sim.Rows("persons"); testenv.Canonical(rows[3]) < testenv.Canonical(rows[4]) {
			break
		}
	}
	if rows := e.sim.Rows("persons"); testenv.Canonical(rows[3]) >= testenv.Canonical(rows[4]) {
		t.Fatal("could not make the first row sort before its twin")
	}
	updates := func(since uint64) int {
		n := 0
		for _, ev := range rowEvents(e.eventsAfter(since)) {
			if ev.Type == event.TypeUpdated && ev.Event.Subject == key {
				n++
			}
		}
		return n
	}
	start := e.lastSeq()
	e.poll("persons")
	if n := updates(start); n != 1 {
		t.Errorf("the pass that revealed the key published %d updates of it, want 1", n)
	}
	if !e.p.reports["persons"].confirmSoon {
		t.Error("the pass left the key to the next but did not ask for it at once")
	}
	mid := e.lastSeq()
	e.poll("persons")
	if n := updates(mid); n != 1 {
		t.Errorf("the next pass published %d updates of the key, want the one it comes to", n)
	}
	if d := testenv.Diff(e.kv("persons"), standing(e.sim, "persons")); d != "" {
		t.Errorf("after the next pass:\n%s", d)
	}
}
