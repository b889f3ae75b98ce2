package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestOneProducerPerDataDir: a second produce on a live data_dir fails at
// once naming the first, before it opens anything; the first goes on.
func TestOneProducerPerDataDir(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 5, Reports: []simulator.ReportSpec{{Name: "players", Kind: "persons", Rows: 40}}})
	dir := t.TempDir()
	env := []string{"TEST_PLAYERS_KEY=" + sim.Key("players")}
	first := writeFile(t, "a.yaml", fmt.Sprintf(minimalConfig, dir, freeAddr(t), base))
	a := testenv.Start(t, "first", env, "produce", "--config", first, "--log-format", "json")
	testenv.WaitFor(t, "the first producer to poll", func() bool { return strings.Contains(a.Logs(), `"msg":"producing"`) })

	// The same data_dir, only the port changed: it would open the live store.
	second := writeFile(t, "b.yaml", fmt.Sprintf(minimalConfig, dir, freeAddr(t), base))
	start := time.Now()
	status, out := runBin(t, env, "produce", "--config", second)
	if status != 2 || !strings.Contains(out, "data_dir") || !strings.Contains(out, "in use") ||
		!strings.Contains(out, "pid "+strconv.Itoa(a.Pid())) || !strings.Contains(out, "cometstream produce --config "+first) {
		t.Fatalf("second producer on the same data_dir: exit %d\n%s", status, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	// The same configuration started twice is refused the same way.
	if status, out := runBin(t, env, "produce", "--config", first); status != 2 || !strings.Contains(out, "in use") {
		t.Fatalf("the same configuration twice: exit %d\n%s", status, out)
	}
	if strings.Contains(a.Logs(), "corrupt") {
		t.Errorf("the first producer's store was disturbed:\n%s", a.Tail(2000))
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("the first producer: %v\n%s", err, a.Tail(2000))
	}
	// Once it stopped, the directory is free again.
	c := testenv.Start(t, "third", env, "produce", "--config", second, "--log-format", "json")
	testenv.WaitFor(t, "a producer on the freed data_dir", func() bool { return strings.Contains(c.Logs(), `"msg":"producing"`) })
	c.Stop()
}

// TestOneProducerPerStream: a second producer with the same configuration
// on another machine (another data_dir, so another instance) and no ha
// refuses to start naming the first: every change is published once, and
// COMET's limit is never exceeded.
func TestOneProducerPerStream(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 6, RateLimit: 10, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 300}}})
	// COMET's own limit, which the simulator enforces.
	editFile(t, w.config, func(s string) string { return strings.Replace(s, "rate_limit: 200", "rate_limit: 10", 1) })
	b, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	configB := writeFile(t, "b.yaml", strings.Replace(string(b), filepath.Join(w.dir, "data"), filepath.Join(w.dir, "b", "data"), 1))

	a := testenv.Start(t, "first", w.env, "produce", "--config", w.config, "--log-format", "json")
	waitSynced(t, w.js, "persons", 0, 30*time.Second)
	stopChurn := testenv.Churn(w.sim, 50*time.Millisecond)
	status, out := runBin(t, w.env, "produce", "--config", configB)
	stopChurn()
	if status != 2 || !strings.Contains(out, "another producer writes this stream") || !strings.Contains(out, "ha.lease_ttl") || !strings.Contains(out, "pid "+strconv.Itoa(a.Pid())) {
		t.Fatalf("a second producer on the same stream: exit %d\n%s", status, out)
	}
	_, last := waitSynced(t, w.js, "persons", 0, 30*time.Second)
	waitSynced(t, w.js, "persons", last, 30*time.Second) // a pass after the churn stopped
	if err := a.Stop(); err != nil {
		t.Fatalf("first producer: %v\n%s", err, a.Tail(2000))
	}
	testenv.Chains(t, testenv.Events(t, w.js, "COMET", 0))
	if st := w.sim.Stats(); st.Violations != 0 {
		t.Errorf("%d rate-limit violations", st.Violations)
	}
	// The first stopped cleanly and let the stream go: the second starts.
	kv, _ := w.js.KeyValue(t.Context(), event.StateBucketName("comet"))
	if _, err := kv.Get(t.Context(), event.WriterKey); err == nil {
		t.Error("the stopped producer left its claim on the stream")
	}
	bp := testenv.Start(t, "second", w.env, "produce", "--config", configB, "--log-format", "json")
	testenv.WaitFor(t, "the second producer", func() bool { return strings.Contains(bp.Logs(), `"msg":"producing"`) })
	bp.Stop()
}
