package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

const leaseTTL = 3 * time.Second

// haWorld is a NATS server, a rate-limited simulator whose two reports
// belong to one COMET user, and two producers with the same configuration.
type haWorld struct {
	t       *testing.T
	sim     *simulator.Simulator
	url     string
	js      jetstream.JetStream
	configs [2]string
	env     []string
}

// newHAWorld starts the world and its two producers; it skips the test in
// -short mode.
func newHAWorld(t *testing.T) (*haWorld, *testenv.Proc, *testenv.Proc) {
	if testing.Short() {
		t.Skip("runs two producers sharing a lease")
	}
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	// The simulator notes calls when its handlers run, inside this test
	// process (under the race detector, beside two producers, on two
	// cores): it may note one late by tens of milliseconds. The producers'
	// limiter leaves 40 ms a second; ArrivalNoise keeps the simulator's
	// own lateness from counting as theirs.
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 13, RateLimit: 10, ArrivalNoise: 30 * time.Millisecond, Latency: 20 * time.Millisecond, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 300, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 100, User: "federation"},
	}})
	w := &haWorld{t: t, sim: sim, url: srv.ClientURL(),
		env: []string{"KEY_PERSONS=" + sim.Key("persons"), "KEY_MATCHES=" + sim.Key("matches")}}
	_, w.js = testenv.Connect(t, w.url)
	for i := range w.configs {
		w.configs[i] = filepath.Join(dir, fmt.Sprintf("p%d.yaml", i))
		os.WriteFile(w.configs[i], []byte(fmt.Sprintf(`data_dir: %s
nats: {url: %q, duplicate_window: 1s}
http: {listen: ""}
ha: {lease_ttl: %s}
sources:
  - name: sim
    base_url: %s
    rate_limit: 10
    reports:
      - {name: persons, api_key_env: KEY_PERSONS, user: federation, key: [personId], interval: 1s, page_size: 20}
      - {name: matches, api_key_env: KEY_MATCHES, user: federation, key: [competitionId, matchNo], interval: 1s, page_size: 20}
`, filepath.Join(dir, fmt.Sprint("data", i)), w.url, leaseTTL, base)), 0o600)
	}
	a := testenv.Start(t, "producer a", w.env, "produce", "--config", w.configs[0], "--log-format", "json")
	b := testenv.Start(t, "producer b", w.env, "produce", "--config", w.configs[1], "--log-format", "json")
	return w, a, b
}

// active waits for one of the producers to acquire the lease.
func active(t *testing.T, procs ...*testenv.Proc) (*testenv.Proc, *testenv.Proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, p := range procs {
			if strings.Contains(p.Logs(), "lease acquired") {
				return p, procs[1-i]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no producer acquired the lease")
	return nil, nil
}

func (w *haWorld) churn() (stop func()) { return testenv.Churn(w.sim, 40*time.Millisecond) }

// waitTakeover waits, a few lease TTLs at most, for the standby to acquire
// the lease.
func waitTakeover(t *testing.T, standby *testenv.Proc) {
	t.Helper()
	deadline := time.Now().Add(4 * leaseTTL)
	for !strings.Contains(standby.Logs(), "lease acquired") {
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not take over:\n%s", standby.Tail(2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAFailover kills the active producer mid-pass while the data changes:
// the standby takes over within the lease TTL, the stream holds exactly one
// event per change, the buckets equal the simulator, and the two producers
// together never exceeded the user's 10 calls a second.
func TestHAFailover(t *testing.T) {
	w, a, b := newHAWorld(t)
	stop := w.churn()
	act, standby := active(t, a, b)
	// Two whole passes, then killed in the middle of the third: when
	// persons' page 3 is being served.
	waitPasses(t, w.js, "persons", 2)
	killed := w.midPass("persons", 3, func() { act.Kill() })
	waitTakeover(t, standby)
	killedAt := <-killed
	if took := time.Since(killedAt); took > leaseTTL+leaseTTL/3+time.Second {
		t.Errorf("takeover took %s, more than the lease TTL (%s) and a renewal period", took, leaseTTL)
	}
	// The new holder completes passes of both reports while the data changes.
	testenv.WaitFor(t, "the standby's passes", func() bool { return strings.Count(standby.Logs(), `"msg":"pass"`) >= 4 })
	stop()
	waitBuckets(t, w.js, w.sim, standby)
	if err := standby.Stop(); err != nil {
		t.Errorf("standby: %v", err)
	}
	w.checkStream()
}

// checkStream checks that the stream's events add up to each report and
// that the two producers together kept the user's rate limit.
func (w *haWorld) checkStream() {
	w.t.Helper()
	final := testenv.Chains(w.t, testenv.Events(w.t, w.js, "COMET", 0))
	for _, r := range []string{"persons", "matches"} {
		if d := testenv.Diff(final[r], testenv.Want(w.sim, r)); d != "" {
			w.t.Errorf("%s: the stream does not add up to the report:\n%s", r, d)
		}
	}
	if st := w.sim.Stats(); st.Violations != 0 {
		w.t.Errorf("%d rate-limit violations by the two producers: %+v", st.Violations, st.Users)
	}
}

// waitBuckets waits until every report's bucket equals the simulator.
func waitBuckets(t *testing.T, js jetstream.JetStream, sim *simulator.Simulator, procs ...*testenv.Proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		diff := ""
		for _, r := range sim.Reports() {
			if d := testenv.Diff(testenv.Bucket(t, js, event.BucketName("comet", r.Name)), testenv.Want(sim, r.Name)); d != "" {
				diff += r.Name + ": " + d
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the buckets never caught up:\n%s%s", diff, tails(procs...))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitPasses waits until the stream holds n receipts of a report.
func waitPasses(t *testing.T, js jetstream.JetStream, report string, n int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d passes of %s", n, report), func() bool {
		got := 0
		for _, ev := range testenv.Events(t, js, "COMET", 0) {
			if ev.Synced != nil && ev.Synced.Report == report {
				got++
			}
		}
		return got >= n
	})
}

// midPass runs f once, while the simulator serves the given page of a
// report (the producer is then in the middle of a pass), and sends the
// time it ran.
func (w *haWorld) midPass(report string, page int, f func()) <-chan time.Time {
	done := make(chan time.Time, 1)
	var once sync.Once
	w.sim.OnPage(func(r string, p int) {
		if r == report && p == page {
			once.Do(func() {
				f()
				done <- time.Now()
				w.sim.OnPage(nil)
			})
		}
	})
	return done
}

// lastSeqOf is the stream's last sequence.
func lastSeqOf(t *testing.T, js jetstream.JetStream) uint64 {
	info, _ := eventStream(t, js).Info(context.Background())
	return info.State.LastSeq
}

// TestHAFencing pauses the active producer (SIGSTOP) past its lease; the
// standby takes over; when the paused one resumes it publishes nothing.
func TestHAFencing(t *testing.T) {
	w, a, b := newHAWorld(t)
	stop := w.churn()
	paused, other := active(t, a, b)
	waitPasses(t, w.js, "persons", 1)
	<-w.midPass("persons", 3, func() { paused.Signal(syscall.SIGSTOP) })
	// Should the test fail while the producer is paused, it resumes to be stopped.
	t.Cleanup(func() { paused.Signal(syscall.SIGCONT) })
	waitTakeover(t, other)
	// The new holder publishes passes of its own.
	testenv.WaitFor(t, "the new holder's passes", func() bool { return strings.Count(other.Logs(), `"msg":"pass"`) >= 2 })
	mark := len(paused.Logs())
	seqMark := lastSeqOf(t, w.js)
	paused.Signal(syscall.SIGCONT)
	// The resumed producer finds its lease gone and stops its pollers.
	testenv.WaitFor(t, "the resumed producer to notice", func() bool {
		return strings.Contains(paused.Logs()[mark:], "lease expired before it could be renewed")
	})
	testenv.WaitFor(t, "another pass of the holder", func() bool {
		return strings.Count(other.Logs(), `"msg":"pass"`) >= 4
	})
	stop()
	waitBuckets(t, w.js, w.sim, other)

	// Stop both first: every pass the holder published is then in its log.
	for _, p := range []*testenv.Proc{a, b} {
		p.Stop()
	}
	after := paused.Logs()[mark:]
	if strings.Contains(after, `"msg":"pass"`) {
		t.Errorf("the resumed producer completed a pass:\n%s", after)
	}
	ours := syncsOf(other.Logs())
	for _, ev := range testenv.Events(t, w.js, "COMET", seqMark) {
		sync := ""
		switch {
		case ev.Row != nil:
			sync = ev.Row.Sync
		case ev.Synced != nil:
			sync = ev.Synced.Sync
		}
		if sync != "" && !ours[sync] {
			t.Errorf("seq %d (%s) was published by the resumed producer", ev.Seq, ev.Subject)
		}
	}
	w.checkStream()
}

// syncsOf collects the sync ids of the passes a producer logged.
func syncsOf(logs string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg  string `json:"msg"`
			Sync string `json:"sync"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Sync != "" {
			out[l.Sync] = true
		}
	}
	return out
}

// TestHARefusedWithoutFencing runs producers against a real nats-server
// 2.11, which has no atomic batch publish: with ha the producer refuses to
// start (exit 2) naming the server version, because its fencing could not
// hold; without ha it runs.
func TestHARefusedWithoutFencing(t *testing.T) {
	url := testenv.StartNATSBinary(t, testenv.OldNATSServer(t, "v2.11.9"))
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 30}}})
	config := func(ha string) string {
		return personsConfig(t, fmt.Sprintf("nats: {url: %q}\nhttp: {listen: \"\"}\n%s", url, ha), base)
	}
	env := []string{"KEY=" + sim.Key("persons")}
	status, out := runBin(t, env, "produce", "--config", config("ha: {lease_ttl: 5s}"))
	if status != 2 || !strings.Contains(out, "cannot fence producers") || !strings.Contains(out, "2.11.9") || !strings.Contains(out, "2.12") {
		t.Fatalf("ha on nats-server 2.11: exit %d\n%s", status, out)
	}
	_, js := testenv.Connect(t, url)
	p := testenv.Start(t, "producer", env, "produce", "--config", config(""), "--log-format", "json")
	s, _ := waitSynced(t, js, "persons", 0, 30*time.Second)
	if !s.Consistent || s.Created != 30 {
		t.Errorf("without ha on 2.11: %+v", s)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("producer: %v\n%s", err, p.Tail(2000))
	}
}
