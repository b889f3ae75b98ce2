package sinktest

import (
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// Hostile runs a report whose column keys and values are SQL, subject
// wildcards, dots, newlines and long quoted strings through the producer and
// the sink, beside an ordinary report: both tables come out right and the
// ordinary one is untouched. Then a 1 MB value makes its row invalid (a
// clear log line, the receipt counts it, the sink keeps the old row), and
// deeply nested JSON makes the page invalid (a clear log line, and that
// report publishes nothing until it is fixed).
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
	before := rowByID(w.target.Rows(t, "main", "hostile"), firstID)["long"]
	w.sim.Poison("hostile", 0, "long", `"`+strings.Repeat("x", 1<<20)+`"`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs := testenv.Events(t, w.js, "COMET", last)
		var receipt *event.Synced
		for _, ev := range evs {
			if ev.Synced != nil && ev.Synced.Report == "hostile" {
				receipt = ev.Synced
			}
		}
		if receipt != nil {
			if receipt.InvalidRows != 1 || receipt.Consistent {
				t.Fatalf("receipt after a 1 MB value: %+v", receipt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receipt after the 1 MB value\n%s", producer.Tail(2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(producer.Logs(), "is longer than the 262144-byte limit") || !strings.Contains(producer.Logs(), `column \"long\"`) {
		t.Errorf("the producer did not say which value was too long:\n%s", producer.Tail(3000))
	}
	time.Sleep(time.Second) // the sink has applied that pass
	if got := rowByID(w.target.Rows(t, "main", "hostile"), firstID)["long"]; text(got) != text(before) {
		t.Errorf("the row with the oversize value changed in the sink (%d bytes)", len(text(got)))
	}

	w.sim.Poison("hostile", 0, "long", "")
	w.sim.Poison("hostile", 1, "a.b", strings.Repeat("[", 200)+strings.Repeat("]", 200))
	time.Sleep(500 * time.Millisecond)
	mark := lastSeq(t, w)
	time.Sleep(3 * time.Second)
	for _, ev := range testenv.Events(t, w.js, "COMET", mark) {
		if ev.Row != nil && ev.Row.Report == "hostile" || ev.Synced != nil && ev.Synced.Report == "hostile" {
			t.Fatalf("a page with nested JSON produced %s", ev.Subject)
		}
	}
	if !strings.Contains(producer.Logs(), "nested array where a scalar value was expected") {
		t.Errorf("the producer did not say what was wrong with the page:\n%s", producer.Tail(3000))
	}
	if n := len(w.target.Rows(t, "main", "persons")); n != 50 {
		t.Errorf("persons has %d rows after the hostile report failed, want 50", n)
	}
	w.sim.Poison("hostile", 1, "a.b", "")
	w.waitConverged("main", producer, sink)
	sink.Stop()
	producer.Stop()
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
