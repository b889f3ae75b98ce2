package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// producerRun is a producer process started by a test.
type producerRun struct {
	cmd  *exec.Cmd
	logs *strings.Builder
}

func startProducer(t *testing.T, bin, config string, env []string) *producerRun {
	t.Helper()
	var logs strings.Builder
	cmd := exec.Command(bin, "produce", "--config", config, "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &producerRun{cmd: cmd, logs: &logs}
}

// crashConfig writes a producer configuration for the simulator's reports.
func crashConfig(t *testing.T, dir, natsURL, base string, sim *simulator.Simulator) (string, []string) {
	return testenv.ProducerConfig(t, dir, natsURL, base, sim, "")
}

// TestProducerSurvivesSIGKILL kills the real producer at random moments 20
// times while the simulator keeps changing its data, sometimes leaving it
// down longer than the stream's duplicate window, and then checks the
// stream: every id unique, every row key's events an unbroken chain, the
// chains ending at the simulator's data, and the bucket equal to it too.
func TestProducerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process 20 times")
	}
	bin := testenv.Binary(t)
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 11, Latency: 2 * time.Millisecond, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 400, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 120, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 90, User: "finance"},
	}})
	config, env := crashConfig(t, dir, srv.ClientURL(), base, sim)

	stopChurn := testenv.Churn(sim, 15*time.Millisecond)
	rng := rand.New(rand.NewPCG(3, 4))
	var allLogs strings.Builder
	for i := range 20 {
		run := startProducer(t, bin, config, env)
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		run.cmd.Process.Kill()
		run.cmd.Wait()
		allLogs.WriteString(run.logs.String())
		if i%4 == 3 {
			time.Sleep(1500 * time.Millisecond) // longer than the duplicate window
		}
	}
	stopChurn()

	run := startProducer(t, bin, config, env)
	deadline := time.Now().Add(90 * time.Second)
	for {
		converged := true
		for _, r := range []string{"persons", "matches", "fees"} {
			if testenv.Diff(testenv.Bucket(t, js, event.BucketName("comet", r)), testenv.Want(sim, r)) != "" {
				converged = false
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			run.cmd.Process.Kill()
			run.cmd.Wait()
			t.Fatalf("the bucket never caught up with the simulator; last run's log:\n%s", tail(run.logs.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	run.cmd.Process.Signal(syscall.SIGTERM)
	if err := run.cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, tail(run.logs.String(), 2000))
	}
	allLogs.WriteString(run.logs.String())

	evs := testenv.Events(t, js, "COMET", 0)
	final := testenv.Chains(t, evs)
	for _, r := range []string{"persons", "matches", "fees"} {
		if d := testenv.Diff(final[r], testenv.Want(sim, r)); d != "" {
			t.Errorf("%s: the stream's events do not add up to the report:\n%s", r, d)
		}
	}
	for _, r := range sim.Reports() {
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

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
