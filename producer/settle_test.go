package producer

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// noSchemaChange fails the test when evs hold a schema event or a row
// re-rendered in other columns.
func noSchemaChange(t *testing.T, what string, evs []streamEvent) {
	t.Helper()
	if c := count(evs); c[event.TypeSchema] > 0 || c[event.TypeUpdated] > 0 || c[event.TypeCreated] > 0 || c[event.TypeDeleted] > 0 {
		t.Errorf("%s published %v, want no schema or row event", what, c)
	}
}

// TestConfirmedColumnsHoldOnePass: new columns seen on every page of one
// pass, then the old ones again: the confirmation is spent, and a later
// page 0 alone with the new columns publishes nothing.
func TestConfirmedColumnsHoldOnePass(t *testing.T) {
	e, rt := retypedPersons(t)
	start := e.lastSeq()
	rt.always.Store(true)
	e.poll("persons") // probe: B on every page
	rt.always.Store(false)
	e.poll("persons") // confirming pass sees A again
	noSchemaChange(t, "a probe for B, then A again,", e.eventsAfter(start))
	// much later: one faulty node answers page 0 with B
	s1 := e.lastSeq()
	rt.once.Store(true)
	if _, err := e.p.Poll(context.Background(), "persons"); err == nil || !strings.Contains(err.Error(), "columns changed during the pass") {
		t.Errorf("a pass with B on page 0 only: %v, want it to fail as columns changed during the pass", err)
	}
	noSchemaChange(t, "a single page 0 with other columns", e.eventsAfter(s1))
	s2 := e.lastSeq()
	e.poll("persons")
	e.poll("persons")
	noSchemaChange(t, "the two passes after it", e.eventsAfter(s2))
}

// TestNewColumnsWhileGrowing: a keyed report that grows during every pass
// gains a column: rows arriving meanwhile do not keep the new columns from
// being confirmed, and the changes are published.
func TestNewColumnsWhileGrowing(t *testing.T) {
	e := newPolledPersons(t, 12, func(rc *ReportConfig) { rc.PageSize = 4 })
	start := e.lastSeq()
	if err := e.sim.AddColumn("persons", "referee", "Referee"); err != nil {
		t.Fatal(err)
	}
	e.sim.OnPage(func(_ string, page int) {
		if page == 1 {
			_ = e.sim.Insert("persons", 1, -1)
		}
	})
	for i := 0; i < 6; i++ {
		e.poll("persons")
	}
	c := count(e.eventsAfter(start))
	if c[event.TypeSchema] != 1 || c[event.TypeUpdated] != 12 || c[event.TypeCreated] < 4 {
		t.Errorf("a growing keyed report with a new column published %v in 6 passes, want the schema, its 12 rows updated and the new rows (%d rows in COMET, %d in bucket)", c, e.sim.Len("persons"), len(e.kv("persons")))
	}
}

// duper serves the simulator with the row at global position 1 replaced
// by a copy of the row at position 0 (a genuine identical row).
type duper struct{ on atomic.Bool }

func newDuper(e *env) (*duper, string) {
	d := &duper{}
	return d, rewriting(e, func(path string, body []byte) []byte {
		if !d.on.Load() || !strings.Contains(path, "/run/0/") {
			return body
		}
		var m map[string]json.RawMessage
		var res []map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || json.Unmarshal(m["results"], &res) != nil || len(res) < 2 {
			return body
		}
		cp := maps.Clone(res[0])
		cp["#result_id#"] = res[1]["#result_id#"]
		res[1] = cp
		m["results"], _ = json.Marshal(res)
		out, _ := json.Marshal(m)
		return out
	})
}

// TestContentKeyedIdenticalRowStallsNothingNew: a content-keyed report
// gains a genuine identical row (a surplus copy every pass), and one new row
// is appended between every two passes: each new row is created once two
// consecutive consistent passes saw it, and the identical copy once two
// passes saw the same rows.
func TestContentKeyedIdenticalRowStallsNothingNew(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "events", Kind: "events", Rows: 8})
	d, base := newDuper(e)
	e.open(e.reportConfig("events", func(rc *ReportConfig) {
		rc.Key, rc.PageSize, rc.Comet.BaseURL = []string{"*"}, 4, base
	}))
	e.poll("events")
	e.poll("events")
	start := e.lastSeq()
	d.on.Store(true)
	for i := 0; i < 8; i++ {
		e.poll("events")
		if err := e.sim.Insert("events", 1, -1); err != nil {
			t.Fatal(err)
		}
	}
	c := count(rowEvents(e.eventsAfter(start)))
	// Rows appended after passes 0 to 5 were each seen by two consistent
	// passes by pass 7; one whose content happens to match a row's already
	// held is a surplus copy and may wait.
	if c[event.TypeCreated] < 4 || c[event.TypeDeleted] != 0 {
		t.Errorf("8 passes with a new row between each published %v, want most of them created and nothing deleted (COMET %d rows, bucket %d)", c, e.sim.Len("events"), len(e.kv("events")))
	}
	e.poll("events")
	e.poll("events")
	// Every appended row created once, the identical copy created, and the
	// row it stands in place of deleted.
	if c := count(rowEvents(e.eventsAfter(start))); c[event.TypeCreated] != 9 || c[event.TypeDeleted] != 1 {
		t.Errorf("after two quiet passes the stream holds %v since the copy appeared, want 8 appended rows and the copy created, the row it replaced deleted", c)
	}
	if got, want := len(e.kv("events")), e.sim.Len("events"); got != want {
		t.Errorf("after two quiet passes the bucket holds %d rows, COMET serves %d", got, want)
	}
}

// TestRepeatedKeyChurnAfterRestart: after a restart, a repeated key whose
// standing row changes between every two passes is settled every pass, as
// without the restart: the count of its rows is recorded with it.
func TestRepeatedKeyChurnAfterRestart(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-restart", true: "restart"}[restart], func(t *testing.T) {
			e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 8})
			e.shapes("persons", simulator.Shapes{RepeatKeys: 1})
			key := e.sim.RepeatedKeys("persons")[0]
			rc := e.reportConfig("persons", func(rc *ReportConfig) { rc.PageSize = 4 })
			e.open(rc)
			e.poll("persons")
			e.poll("persons")
			if restart {
				e.open(rc)
			}
			start := e.lastSeq()
			for i := 0; i < 6; i++ {
				best, at := "", -1
				for j, row := range e.sim.Rows("persons") {
					if testenv.Token(row, []string{"personId"}) == key {
						if c := testenv.Canonical(row); c > best {
							best, at = c, j
						}
					}
				}
				if err := e.sim.UpdateAt("persons", at); err != nil {
					t.Fatal(err)
				}
				e.poll("persons")
			}
			c := count(rowEvents(e.eventsAfter(start)))
			if c[event.TypeUpdated] != 6 || len(c) != 1 {
				t.Errorf("6 changes to the standing row of a repeated key published %v, want 6 updates", c)
			}
			if d := testenv.Diff(e.kv("persons"), standing(e.sim, "persons")); d != "" {
				t.Errorf("bucket differs from COMET after 6 passes (%v):\n%s", c, d)
			}
		})
	}
}

// TestProbeLeavesTheConfirmationToTheSchemaPass: the pass after a probe
// publishes the new columns at once without counting as a confirmation, so
// the content-keyed rows it re-renders get their confirming pass at once
// too, not an interval later.
func TestProbeLeavesTheConfirmationToTheSchemaPass(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "events", Kind: "events", Rows: 10})
	e.open(e.reportConfig("events", func(rc *ReportConfig) { rc.Key, rc.PageSize = []string{"*"}, 4 }))
	e.poll("events")
	e.poll("events")
	if err := e.sim.AddColumn("events", "referee", "Referee"); err != nil {
		t.Fatal(err)
	}
	r := e.p.reports["events"]
	e.poll("events") // the probe
	if wait := e.p.nextWait(r, nil); wait != confirmDelay || r.confirming {
		t.Fatalf("after the probe: next pass in %s (confirming %v), want at once and not a confirmation", wait, r.confirming)
	}
	start := e.lastSeq()
	e.poll("events") // the schema, and the rows in it, suspect until confirmed
	if c := count(e.eventsAfter(start)); c[event.TypeSchema] != 1 {
		t.Fatalf("the pass after the probe published %v, want the schema", c)
	}
	if wait := e.p.nextWait(r, nil); wait != confirmDelay || !r.confirming {
		t.Fatalf("after the schema pass: next pass in %s (confirming %v), want its confirmation at once", wait, r.confirming)
	}
	e.poll("events")
	if got, want := len(e.kv("events")), e.sim.Len("events"); got != want {
		t.Errorf("after the confirming pass the bucket holds %d rows, COMET serves %d", got, want)
	}
}
