package sinktest

import (
	"strings"
	"testing"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// Hostile runs a report whose column keys and values are SQL, subject
// wildcards, dots, newlines and long quoted strings through the producer and
// the sink, beside an ordinary report: both tables come out right and the
// ordinary one is untouched. Then a 1 MB value is a cell that does not
// convert (a clear log line, the receipt counts it, the row is kept with the
// cell null, the pass stays consistent), and JSON nested past the limit
// makes the page malformed (a clear error, a failed event, and that report
// publishes nothing until it is fixed). Last, a new database is loaded from
// the snapshot bucket and comes out the same.
func Hostile(t *testing.T, target Target) {
	w := newWorld(t, target, []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 50},
		{Name: "hostile", Kind: "hostile", Rows: 30},
	})
	producer, sink := w.producer(), w.sink("main")
	w.waitConverged("main", producer, sink)
	rows := w.target.Rows(t, "main", "hostile")
	if _, ok := rows[0][simulator.HostileColumn]; !ok {
		t.Fatalf("the hostile column is missing: %v", keys(rows[0]))
	}
	if n := len(w.target.Rows(t, "main", "persons")); n != 50 {
		t.Fatalf("persons has %d rows, want 50", n)
	}

	last := lastSynced(t, w, "hostile")
	firstID := w.sim.Rows("hostile")[0]["id"].Raw
	w.sim.Poison("hostile", 0, "long", `"`+strings.Repeat("x", 1<<20)+`"`)
	receipt := waitEvent(t, w, last, producer, "a receipt after the 1 MB value", func(ev testenv.Event) bool {
		return ev.Synced != nil && ev.Synced.Report == "hostile"
	}).Synced
	if receipt.InvalidCells != 1 || receipt.InvalidRows != 0 || !receipt.Consistent {
		t.Fatalf("receipt after a 1 MB value: %+v", receipt)
	}
	if !strings.Contains(producer.Logs(), "is longer than the 262144-byte limit") || !strings.Contains(producer.Logs(), `column \"long\"`) {
		t.Errorf("the producer did not say which value was too long:\n%s", producer.Tail(3000))
	}
	// The row is kept, with the cell null, as the simulator's rows say.
	w.waitConverged("main", producer, sink)
	if got := rowByID(w.target.Rows(t, "main", "hostile"), firstID); got == nil || got["long"] != nil {
		t.Fatalf("the row with the oversize value in the sink: %v", got != nil)
	}

	w.sim.Poison("hostile", 0, "long", "")
	w.waitConverged("main", producer, sink)
	mark := lastSeq(t, w)
	w.sim.Poison("hostile", 1, "a.b", strings.Repeat("[", 200)+strings.Repeat("]", 200))
	failed := waitEvent(t, w, mark, producer, "a failed event for the nested JSON", func(ev testenv.Event) bool {
		return ev.Failed != nil && ev.Failed.Report == "hostile"
	})
	if !strings.Contains(failed.Failed.Error, "nested deeper than 64") {
		t.Errorf("the failed event does not say what was wrong with the page: %q", failed.Failed.Error)
	}
	// Two more failing passes, then nothing of the report since the failure.
	fails := func() int {
		return strings.Count(producer.Logs(), `"msg":"pass failed, backing off","report":"hostile"`)
	}
	n := fails()
	testenv.WaitFor(t, "two more failing passes", func() bool { return fails() >= n+2 })
	for _, ev := range testenv.Events(t, w.js, "COMET", failed.Seq) {
		if ev.Row != nil && ev.Row.Report == "hostile" || ev.Synced != nil && ev.Synced.Report == "hostile" {
			t.Fatalf("a page with nested JSON produced %s", ev.Subject)
		}
	}
	if n := len(w.target.Rows(t, "main", "persons")); n != 50 {
		t.Errorf("persons has %d rows after the hostile report failed, want 50", n)
	}
	w.sim.Poison("hostile", 1, "a.b", "")
	w.waitConverged("main", producer, sink)
	// A new database loads the same from the snapshot bucket, where the
	// odd keys and values are JSON to decode.
	fresh := w.sink("fresh")
	w.waitConverged("fresh", producer, fresh)
	if !strings.Contains(fresh.Logs(), `"msg":"bootstrapped from the snapshot","report":"hostile"`) {
		t.Errorf("the new database did not load the hostile report from the snapshot:\n%s", fresh.Tail(3000))
	}
	fresh.Stop()
	sink.Stop()
	producer.Stop()
}

// waitEvent waits for the first event after seq that match accepts.
func waitEvent(t *testing.T, w *world, seq uint64, p *testenv.Proc, what string, match func(testenv.Event) bool) testenv.Event {
	t.Helper()
	var found *testenv.Event
	testenv.WaitFor(t, what, func() bool {
		for _, ev := range testenv.Events(t, w.js, "COMET", seq) {
			if match(ev) {
				found = &ev
				return true
			}
		}
		return false
	})
	if found == nil {
		t.Fatalf("no %s\n%s", what, p.Tail(2000))
	}
	return *found
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func rowByID(rows []map[string]any, id string) map[string]any {
	for _, r := range rows {
		if text(r["id"]) == id {
			return r
		}
	}
	return nil
}

func lastSynced(t *testing.T, w *world, report string) uint64 {
	var seq uint64
	for _, ev := range testenv.Events(t, w.js, "COMET", 0) {
		if ev.Synced != nil && ev.Synced.Report == report {
			seq = ev.Seq
		}
	}
	return seq
}

func lastSeq(t *testing.T, w *world) uint64 {
	evs := testenv.Events(t, w.js, "COMET", 0)
	return evs[len(evs)-1].Seq
}
