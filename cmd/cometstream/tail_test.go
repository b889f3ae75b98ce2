package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestPrintHumanHeldPhases: a held event reads as what its phase says,
// not "DELETES HELD" for a release or the end of a hold.
func TestPrintHumanHeldPhases(t *testing.T) {
	for _, tc := range []struct {
		phase    event.HoldPhase
		want     string
		notWants string
	}{
		{event.HoldStarted, "fees DELETES HELD 40 of 50 rows would be deleted", ""},
		{"", "fees DELETES HELD 40 of 50 rows would be deleted", ""}, // producers from before phases
		{event.HoldReleased, "fees deletes released on the operator's release: 40 of 50 rows deleted", "HELD"},
		{event.HoldEnded, "fees hold ended under the threshold: 40 of 50 rows deleted", "HELD"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			var b strings.Builder
			printHuman(&b, &event.Event{Time: time.Now(), Held: &event.Held{Report: "fees", WouldDelete: 40, RowsBefore: 50, Threshold: 0.5, Phase: tc.phase}}, false)
			if got := b.String(); !strings.Contains(got, tc.want) || tc.notWants != "" && strings.Contains(got, tc.notWants) {
				t.Errorf("phase %q printed %q, want %q", tc.phase, got, tc.want)
			}
		})
	}
}

// TestTail prints filtered events as JSON lines.
func TestTail(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 4, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 30}, {Name: "fees", Kind: "fees", Rows: 12},
	}})
	prod := w.produce(t)
	w.waitFirstPasses(t)
	tail := testenv.Start(t, "tail", nil, "tail", "--nats", w.url, "--from-start", "--color", "never", "--reports", "fees", "--ops", "created", "--log-level", "error")
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(tail.Logs(), "\n") < 12 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// A second tail, with another start, beside the first: each reader has
	// its own consumer on the server.
	news := testenv.Start(t, "tail-new", nil, "tail", "--nats", w.url, "--color", "never", "--reports", "fees", "--ops", "updated", "--log-level", "error")
	testenv.WaitFor(t, "the second tail to print an update", func() bool {
		w.sim.Update("fees", 1)
		time.Sleep(200 * time.Millisecond) // a change every 200ms until one is published
		return strings.Contains(news.Logs(), `"type":"comet.row.updated"`)
	})
	if err := news.Stop(); err != nil {
		t.Errorf("the second tail: %v\n%s", err, news.Tail(2000))
	}
	tail.Stop()
	prod.Stop()
	sc := bufio.NewScanner(strings.NewReader(tail.Logs()))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("line %d is not JSON: %q", n+1, sc.Text())
		}
		ev, err := event.Decode(sc.Bytes())
		if err != nil || ev.Type != event.TypeCreated || ev.Row.Report != "fees" {
			t.Fatalf("line %d: %v %+v", n+1, err, ev)
		}
		n++
	}
	if n != 12 {
		t.Errorf("%d lines, want the 12 fees created", n)
	}
}
