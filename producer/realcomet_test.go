package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// The tests in this file drive the producer against the simulator switched
// to what real COMET deployments do (the simulator's Shapes), over real
// HTTP, and assert the exact events.

// rowEvents returns the row events among evs.
func rowEvents(evs []streamEvent) []streamEvent {
	var out []streamEvent
	for _, ev := range evs {
		if ev.Row != nil {
			out = append(out, ev)
		}
	}
	return out
}

// standing returns, for each key of a report, the row that must stand for
// it: the only row, or of several rows with the key the one whose canonical
// JSON sorts last.
func standing(sim *simulator.Simulator, report string) map[string]string {
	key := sim.KeyColumns(report)
	out := map[string]string{}
	for _, row := range sim.Rows(report) {
		tok, c := testenv.Token(row, key), testenv.Canonical(row)
		if cur, ok := out[tok]; !ok || c > cur {
			out[tok] = c
		}
	}
	return out
}

func TestRepeatedKeysNeverFlipFlop(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 30})
	e.shapes("persons", simulator.Shapes{RepeatKeys: 2})
	repeated := e.sim.RepeatedKeys("persons")
	if len(repeated) != 2 || len(e.sim.Rows("persons")) != 32 {
		t.Fatalf("simulator: repeated %v, %d rows", repeated, len(e.sim.Rows("persons")))
	}
	rc := e.reportConfig("persons", func(rc *ReportConfig) { rc.PageSize = 10 })
	e.open(rc)
	first := e.poll("persons")
	if first.DuplicateKeys != 2 || first.Consistent || first.Created != 30 || first.Updated > 2 {
		t.Fatalf("first pass %+v: want 30 created, at most one update per repeated key, 2 duplicates, not consistent", first)
	}
	want := standing(e.sim, "persons")
	if d := testenv.Diff(e.kv("persons"), want); d != "" {
		t.Fatalf("after the first pass the bucket is not the rows that stand for each key:\n%s", d)
	}
	check := func(what string, passes int) {
		t.Helper()
		start := e.lastSeq()
		for i := range passes {
			s := e.poll("persons")
			if s.Created+s.Updated+s.Deleted != 0 || s.DuplicateKeys != 2 {
				t.Fatalf("%s, pass %d of an unchanged report: %+v", what, i, s)
			}
		}
		if evs := rowEvents(e.eventsAfter(start)); len(evs) != 0 {
			t.Fatalf("%s: %d row events over %d unchanged passes, first %s %s", what, len(evs), passes, evs[0].Type, evs[0].Event.Subject)
		}
		if d := testenv.Diff(e.kv("persons"), want); d != "" {
			t.Fatalf("%s: bucket differs:\n%s", what, d)
		}
	}
	check("in swapping order", 10)

	// The rows of repeated keys were served in both orders: the test
	// exercised what it claims.
	st := e.sim.Stats().Reports["persons"]
	if st.Requests < 20 {
		t.Fatalf("only %d requests", st.Requests)
	}

	// A restarted producer remembers the keys seen repeated.
	e.open(rc)
	check("after a restart", 10)

	// A real change to a repeated key's rows is published once.
	rows := e.sim.Rows("persons")
	for i, row := range rows {
		if testenv.Token(row, []string{"personId"}) == repeated[0] {
			e.sim.UpdateAt("persons", i)
			break
		}
	}
	before := want[repeated[0]]
	want = standing(e.sim, "persons")
	start := e.lastSeq()
	e.poll("persons")
	evs := rowEvents(e.eventsAfter(start))
	switch {
	case want[repeated[0]] == before && len(evs) != 0:
		t.Fatalf("the change did not alter the standing row, but %d events were published", len(evs))
	case want[repeated[0]] != before && (len(evs) != 1 || evs[0].Type != event.TypeUpdated || canonical(t, evs[0].Row.After) != want[repeated[0]]):
		t.Fatalf("the standing row changed; events %v, want one update to it", count(evs))
	}
	check("after the change", 5)
	testenv.Chains(t, e.events())
}

// TestContentKeyedGrowingReportPublishesNoPhantom: a match-events report
// gains a row at the top between pages 0 and 1 of ten consecutive passes.
// The last row of page 0 then reappears on page 1, exactly like a second
// identical row; none of those may be published.
func TestContentKeyedGrowingReportPublishesNoPhantom(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "events", Kind: "events", Rows: 45})
	rc := e.reportConfig("events", func(rc *ReportConfig) { rc.Key = []string{"*"}; rc.PageSize = 10; rc.MaxDeleteFraction = 1 })
	e.open(rc)
	e.poll("events")
	e.poll("events")
	if got, want := len(e.kv("events")), len(e.sim.Rows("events")); got != want {
		t.Fatalf("initial sync: %d rows in the bucket, want %d", got, want)
	}
	start := e.lastSeq()
	e.shapes("events", simulator.Shapes{Grow: 1})
	for i := range 10 {
		before := e.sim.Len("events")
		if _, err := e.p.Poll(context.Background(), "events"); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
		if e.sim.Len("events") != before+1 {
			t.Fatalf("pass %d: the report did not grow between pages", i)
		}
	}
	e.shapes("events", simulator.Shapes{})
	for range 3 {
		e.poll("events")
	}
	evs := rowEvents(e.eventsAfter(start))
	c := count(evs)
	if c[event.TypeDeleted] != 0 || c[event.TypeUpdated] != 0 || c[event.TypeCreated] != 10 {
		t.Fatalf("events %v: want exactly the 10 inserted rows created and nothing deleted", c)
	}
	// The stream replayed equals the report as a multiset of rows.
	final := testenv.Chains(t, e.events())["events"]
	got := map[string]int{}
	for _, row := range final {
		got[row]++
	}
	want := map[string]int{}
	for _, row := range e.sim.Rows("events") {
		want[testenv.Canonical(row)]++
	}
	for row, n := range want {
		if got[row] != n {
			t.Errorf("row %s: %d in the stream, %d in the report", row, got[row], n)
		}
	}
	if len(final) != len(e.sim.Rows("events")) {
		t.Errorf("the stream holds %d rows, the report %d", len(final), len(e.sim.Rows("events")))
	}
}

// TestContentKeyedShiftedPassesNeverInventOrFalselyDelete changes a
// content-keyed report between the pages of 120 passes and checks after
// every pass that no created row has more copies than the report had, and
// no deleted row is one the report still holds.
func TestContentKeyedShiftedPassesNeverInventOrFalselyDelete(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "events", Kind: "events", Rows: 120})
	e.open(e.reportConfig("events", func(rc *ReportConfig) { rc.Key = []string{"*"}; rc.PageSize = 20; rc.MaxDeleteFraction = 1 }))
	copies := func() map[string]int {
		m := map[string]int{}
		for _, row := range e.sim.Rows("events") {
			m[testenv.Canonical(row)]++
		}
		return m
	}
	shift := newPageShifter(e, 11, func(report string, kind int, rng *rand.Rand) {
		switch kind {
		case 0:
			e.sim.Insert(report, 1, 0)
		case 1, 2: // counts unchanged: an insert at the top, a delete below
			e.sim.Insert(report, 1, 0)
			e.sim.Delete(report, 1, max(e.sim.Len(report)-1, 0))
		case 3:
			e.sim.Delete(report, 1, rng.IntN(max(e.sim.Len(report), 1)))
		}
	})
	seenBefore := []map[string]int{copies()}
	last, creates, deletes := uint64(0), 0, 0
	for i := range 120 {
		shift.next(5, 9)
		seenBefore = append(seenBefore, copies())
		if _, err := e.p.Poll(context.Background(), "events"); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
		now := copies()
		evs := e.eventsAfter(last)
		for _, ev := range evs {
			if ev.Row == nil {
				continue
			}
			n := 1
			if i := strings.LastIndexByte(ev.Event.Subject, '-'); i > 0 {
				fmt.Sscan(ev.Event.Subject[i+1:], &n)
			}
			switch ev.Type {
			case event.TypeCreated:
				creates++
				// Two consecutive passes saw n copies: the report had them
				// when the earlier one began, at the latest.
				row := canonical(t, ev.Row.After)
				had := max(seenBefore[len(seenBefore)-2][row], seenBefore[len(seenBefore)-1][row])
				if had < n {
					t.Fatalf("pass %d created %s (copy %d) of a row the report never had %d copies of", i, ev.Event.Subject, n, n)
				}
			case event.TypeDeleted:
				deletes++
				if now[canonical(t, ev.Row.Before)] >= n {
					t.Fatalf("pass %d deleted %s (copy %d), which the report still holds", i, ev.Event.Subject, n)
				}
			}
		}
		last = evs[len(evs)-1].Seq
	}
	if creates == 0 || deletes == 0 {
		t.Fatalf("%d creates, %d deletes: the test exercised nothing", creates, deletes)
	}
	e.sim.OnPage(nil)
	for range 3 {
		e.poll("events")
	}
	final := testenv.Chains(t, e.events())["events"]
	got := map[string]int{}
	for _, row := range final {
		got[row]++
	}
	if want := copies(); !mapsEqual(got, want) {
		t.Errorf("the stream replayed holds %d distinct rows, the report %d", len(got), len(want))
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestUndeclaredFieldsAreTaken(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "matches", Kind: "matches", Rows: 60})
	e.shapes("matches", simulator.Shapes{Undeclared: true, EmptyStrings: true, PageResultIDs: true})
	e.open(e.reportConfig("matches"))
	s := e.poll("matches")
	if s.Created != 60 || !s.Consistent || s.InvalidRows != 0 || s.InvalidCells != 0 {
		t.Fatalf("receipt %+v: want every row created, consistent", s)
	}
	e.assertKV("matches")
	var schema *event.SchemaChange
	for _, ev := range e.events() {
		if ev.Schema != nil {
			schema = ev.Schema
		}
		if ev.Row != nil {
			for _, f := range []string{"uid", "id", "lastupdateddatetime"} {
				if _, ok := ev.Row.After[f]; ok {
					t.Fatalf("row %s carries the undeclared field %s", ev.Event.Subject, f)
				}
			}
		}
	}
	if schema == nil || !slices.Equal(schema.Undeclared, []string{"id", "lastupdateddatetime", "uid"}) || len(schema.Columns) != 9 {
		t.Fatalf("schema event %+v: want the three undeclared fields listed", schema)
	}
	e.poll("matches")
	if n := strings.Count(e.logs.String(), "columnKeys does not list"); n != 2 {
		t.Errorf("the undeclared fields were logged %d times over 2 passes, want once per pass", n)
	}
	if c := count(e.events()); c[event.TypeSchema] != 1 {
		t.Errorf("%d schema events, want 1", c[event.TypeSchema])
	}
}

func TestBadCellKeepsItsRowAndDeletesGoOn(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "fees", Kind: "fees", Rows: 50})
	e.shapes("fees", simulator.Shapes{BadCells: 2})
	e.open(e.reportConfig("fees"))
	s := e.poll("fees")
	if s.Created != 50 || s.InvalidCells != 2 || s.InvalidRows != 0 || !s.Consistent {
		t.Fatalf("receipt %+v: want 50 created, 2 invalid cells, consistent", s)
	}
	e.assertKV("fees") // the bad cells are null, as the simulator's rows say
	logs := e.logs.String()
	if !strings.Contains(logs, "published as null") || !strings.Contains(logs, `of row {\"feeRef\":\"FEE`) {
		t.Errorf("no log line naming the column and a row key:\n%s", logs)
	}
	start := e.lastSeq()
	e.sim.Delete("fees", 1, 10)
	e.poll("fees")
	e.poll("fees")
	if c := count(e.eventsAfter(start)); c[event.TypeDeleted] != 1 {
		t.Fatalf("after a delete: %v, want the delete published", c)
	}
	e.assertKV("fees")
}

func TestPagesByTheSizeCometServes(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 1200})
	e.shapes("persons", simulator.Shapes{PageCap: 500})
	e.open(e.reportConfig("persons", func(rc *ReportConfig) { rc.PageSize = 1000 }))
	s := e.poll("persons")
	if s.Created != 1200 || !s.Consistent || s.PageSize != 500 || s.Pages != 3 {
		t.Fatalf("receipt %+v: want 1200 rows in 3 pages of 500", s)
	}
	e.assertKV("persons")
	e.sim.ResetStats()
	s = e.poll("persons")
	if !s.Consistent || s.Requests != 3 {
		t.Errorf("second pass %+v: want 3 requests, none wasted", s)
	}
	if n := strings.Count(e.logs.String(), "COMET serves fewer rows a page"); n != 1 {
		t.Errorf("the served page size was logged %d times, want once", n)
	}
	for page, n := range e.sim.Stats().Reports["persons"].Pages {
		if n != 1 {
			t.Errorf("page %d requested %d times", page, n)
		}
	}
}

func TestTemplatePathAndFilterOnEveryRequest(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 80, TemplateID: 4711})
	params := map[string]string{"registrationStatus": "label.confirmed", "dateFrom": "2026-01-01"}
	e.shapes("persons", simulator.Shapes{TemplatePath: true, Params: params})
	rc := e.reportConfig("persons", func(rc *ReportConfig) {
		rc.Comet.Path = "/data-backend/api/public/areports/run/4711/{page}/{size}/"
		rc.Comet.Params = params
	})
	e.open(rc)
	e.poll("persons")
	e.sim.Delete("persons", 1, 3)
	e.poll("persons")
	e.poll("persons")
	e.assertKV("persons")
	st := e.sim.Stats().Reports["persons"]
	if st.Requests < 12 || st.BadParams != 0 || st.WrongPath != 0 {
		t.Fatalf("stats %+v: every request must carry the template path and the filters", st)
	}

	// The path and the filters select the rows: changing them is refused.
	p, _ := New(Config{Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: []ReportConfig{e.reportConfig("persons", func(rc *ReportConfig) {
		rc.Comet.Path = "/data-backend/api/public/areports/run/4711/{page}/{size}/"
		rc.Comet.Params = map[string]string{"registrationStatus": "label.pending"}
	})}})
	if err := p.Open(context.Background()); !errors.Is(err, ErrReportChanged) || !Permanent(err) {
		t.Fatalf("changed params: %v", err)
	}
}

// TestFailingCometCostsOnePagesRetriesAndSaysSo: while COMET answers 503
// before page 0 ever succeeded, a pass costs page 0's retries and the first
// attempts of the pages sent ahead; the stream says the report is failing
// once, again after an hour, and the next synced says it recovered.
func TestFailingCometCostsOnePagesRetriesAndSaysSo(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 300})
	clock := newTestClock()
	rc := e.reportConfig("persons", func(rc *ReportConfig) { rc.Comet.MaxRetries = 3; rc.Comet.Concurrency = 8 })
	e.openWith(func(c *Config) { c.Now = clock.Now }, rc)
	e.shapes("persons", simulator.Shapes{Storm: 1000, HTMLErrors: true})
	if _, err := e.p.Poll(context.Background(), "persons"); !errors.Is(err, comet.ErrTransient) || !strings.Contains(err.Error(), "text/html") {
		t.Fatalf("pass against a 503 storm: %v", err)
	}
	pages := e.sim.Stats().Reports["persons"].Pages
	if pages[0] != 4 {
		t.Errorf("page 0 requested %d times, want 4 (one attempt, three retries)", pages[0])
	}
	sent := 0
	for p, n := range pages {
		sent += n
		if p != 0 && n != 1 {
			t.Errorf("page %d, sent ahead, requested %d times", p, n)
		}
	}
	if sent > 4+7 {
		t.Errorf("%d requests, want at most 11", sent)
	}
	failed := func() []streamEvent {
		var out []streamEvent
		for _, ev := range e.events() {
			if ev.Type == event.TypeFailed {
				out = append(out, ev)
			}
		}
		return out
	}
	if f := failed(); len(f) != 1 || f[0].Failed.Attempts != 1 || !f[0].Failed.Since.Equal(clock.Now()) || !strings.Contains(f[0].Failed.Error, "HTTP 503") || f[0].Subject != "comet.persons.report.failed" {
		t.Fatalf("failed events %+v", f)
	}
	for range 3 {
		clock.Add(10 * time.Minute)
		e.p.Poll(context.Background(), "persons")
	}
	if n := len(failed()); n != 1 {
		t.Fatalf("%d failed events within the hour, want 1", n)
	}
	clock.Add(31 * time.Minute)
	e.p.Poll(context.Background(), "persons")
	if f := failed(); len(f) != 2 || f[1].Failed.Attempts != 5 {
		t.Fatalf("after an hour: %d failed events, last %+v", len(f), f[len(f)-1].Failed)
	}

	// Stopping the producer does not replace the real last error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.p.Poll(ctx, "persons")
	if r := e.p.reports["persons"]; !strings.Contains(r.state.LastError, "HTTP 503") {
		t.Errorf("last error %q after a stopped pass, want the 503", r.state.LastError)
	}

	e.shapes("persons", simulator.Shapes{})
	s := e.poll("persons")
	evs := e.events()
	if last := evs[len(evs)-1]; last.Type != event.TypeSynced || last.Synced.Error != "" || !s.Consistent {
		t.Fatalf("after recovery the stream ends with %s %+v", last.Type, last.Synced)
	}
	if r := e.p.reports["persons"]; !r.state.FailingSince.IsZero() || r.state.LastError != "" {
		t.Errorf("state after recovery: failing since %s, last error %q", r.state.FailingSince, r.state.LastError)
	}
}

func TestMaintenancePageIsATransientFailure(t *testing.T) {
	e := newPolledPersons(t, 40)
	start := e.lastSeq()
	e.shapes("persons", simulator.Shapes{Maintenance: 100})
	_, err := e.p.Poll(context.Background(), "persons")
	if !errors.Is(err, comet.ErrTransient) || !strings.Contains(err.Error(), "not JSON") || !strings.Contains(err.Error(), "text/html") {
		t.Fatalf("maintenance page: %v", err)
	}
	if strings.Contains(err.Error(), e.sim.Key("persons")) || strings.Contains(e.logs.String(), e.sim.Key("persons")) {
		t.Fatal("the API key leaked")
	}
	e.shapes("persons", simulator.Shapes{})
	e.poll("persons")
	if c := count(e.eventsAfter(start)); c[event.TypeFailed] != 1 || c[event.TypeDeleted] != 0 || c[event.TypeSynced] != 1 {
		t.Fatalf("events %v: want failed, then synced, and nothing deleted", c)
	}
	e.assertKV("persons")
}
