package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestProducerSurvivesSIGKILL kills the real producer at random moments 20
// times while the simulator keeps changing its data, sometimes leaving it
// down longer than the stream's duplicate window, and then checks the
// stream: every id unique, every row key's events an unbroken chain, the
// chains ending at the simulator's data, and the bucket equal to it too.
func TestProducerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process 20 times")
	}
	w := newStack(t, simulator.Config{Seed: 11, Latency: 2 * time.Millisecond, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 400, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 120, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 90, User: "finance"},
	}})

	stopChurn := testenv.Churn(w.sim, 15*time.Millisecond)
	rng := rand.New(rand.NewPCG(3, 4))
	var allLogs strings.Builder
	for i := range 20 {
		run := w.produce(t, "--log-level", "debug")
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		run.Kill()
		allLogs.WriteString(run.Logs())
		if i%4 == 3 {
			time.Sleep(1500 * time.Millisecond) // longer than the duplicate window
		}
	}
	stopChurn()

	run := w.produce(t, "--log-level", "debug")
	deadline := time.Now().Add(90 * time.Second)
	for {
		converged := true
		for _, r := range []string{"persons", "matches", "fees"} {
			if testenv.Diff(testenv.Bucket(t, w.js, event.BucketName("comet", r)), testenv.Want(w.sim, r)) != "" {
				converged = false
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			run.Kill()
			t.Fatalf("the bucket never caught up with the simulator; last run's log:\n%s", run.Tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := run.Stop(); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, run.Tail(2000))
	}
	allLogs.WriteString(run.Logs())

	evs := testenv.Events(t, w.js, "COMET", 0)
	final := testenv.Chains(t, evs)
	for _, r := range []string{"persons", "matches", "fees"} {
		if d := testenv.Diff(final[r], testenv.Want(w.sim, r)); d != "" {
			t.Errorf("%s: the stream's events do not add up to the report:\n%s", r, d)
		}
	}
	for _, r := range w.sim.Reports() {
		if strings.Contains(allLogs.String(), r.APIKey) {
			t.Errorf("the API key of %s appears in the producer's logs", r.Name)
		}
		for _, ev := range evs {
			if strings.Contains(string(ev.Raw), r.APIKey) {
				t.Fatalf("the API key of %s appears in event %d", r.Name, ev.Seq)
			}
		}
	}
	var rowEvents int
	for _, ev := range evs {
		if ev.Row != nil {
			rowEvents++
		}
	}
	t.Logf("%d events, %d row events, over 21 producer runs", len(evs), rowEvents)
}
