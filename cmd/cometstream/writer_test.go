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
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 6, RateLimit: 10, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 300}}})
	os.MkdirAll(filepath.Join(dir, "a"), 0o700)
	configA, env := testenv.ProducerConfig(t, filepath.Join(dir, "a"), srv.ClientURL(), base, sim, "")
	b, _ := os.ReadFile(configA)
	// COMET's own limit, which the simulator enforces.
	b = []byte(strings.Replace(string(b), "rate_limit: 200", "rate_limit: 10", 1))
	os.WriteFile(configA, b, 0o600)
	configB := filepath.Join(dir, "b.yaml")
	os.WriteFile(configB, []byte(strings.Replace(string(b), filepath.Join(dir, "a", "data"), filepath.Join(dir, "b", "data"), 1)), 0o600)

	a := testenv.Start(t, "first", env, "produce", "--config", configA, "--log-format", "json")
	waitSynced(t, js, "persons", 0, 30*time.Second)
	stopChurn := testenv.Churn(sim, 50*time.Millisecond)
	status, out := runBin(t, env, "produce", "--config", configB)
	stopChurn()
	if status != 2 || !strings.Contains(out, "another producer writes this stream") || !strings.Contains(out, "ha.lease_ttl") || !strings.Contains(out, "pid "+strconv.Itoa(a.Pid())) {
		t.Fatalf("a second producer on the same stream: exit %d\n%s", status, out)
	}
	_, last := waitSynced(t, js, "persons", 0, 30*time.Second)
	waitSynced(t, js, "persons", last, 30*time.Second) // a pass after the churn stopped
	if err := a.Stop(); err != nil {
		t.Fatalf("first producer: %v\n%s", err, a.Tail(2000))
	}
	testenv.Chains(t, testenv.Events(t, js, "COMET", 0))
	if st := sim.Stats(); st.Violations != 0 {
		t.Errorf("%d rate-limit violations", st.Violations)
	}
	// The first stopped cleanly and let the stream go: the second starts.
	kv, _ := js.KeyValue(t.Context(), event.StateBucketName("comet"))
	if _, err := kv.Get(t.Context(), event.WriterKey); err == nil {
		t.Error("the stopped producer left its claim on the stream")
	}
	bp := testenv.Start(t, "second", env, "produce", "--config", configB, "--log-format", "json")
	testenv.WaitFor(t, "the second producer", func() bool { return strings.Contains(bp.Logs(), `"msg":"producing"`) })
	bp.Stop()
}
