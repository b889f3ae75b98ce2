package main

// Tests of `cometstream produce` as a process: where its NATS URL comes
// from and how it starts and stops, one producer per data_dir and per
// stream, COMET users shared between sources, the stream's retention, and
// SIGKILL at random moments.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
	"github.com/cometstream/cometstream/producer"
)

// natsConfig is a producer configuration whose nats section is given.
func natsConfig(t *testing.T, nats string) string {
	t.Helper()
	return writeFile(t, "c.yaml", fmt.Sprintf(`data_dir: %s
nats:
  duplicate_window: 1s
%shttp:
  listen: ""
sources:
  - name: faw
    base_url: http://127.0.0.1:1
    reports:
      - name: players
        api_key_env: TEST_PLAYERS_KEY
        key: [personId]
`, t.TempDir(), nats))
}

// TestNATSURLSaysWhereItCameFrom: a producer that cannot connect names the
// URL (without its password) and where it came from, and a nats.listen
// written in the file starts the embedded server although $NATS_URL is
// exported (as the README suggests for the CLI).
func TestNATSURLSaysWhereItCameFrom(t *testing.T) {
	key := "TEST_PLAYERS_KEY=k"
	for _, tc := range []struct {
		name, nats string
		env, args  []string
		says       string
	}{
		{"from the environment", "", []string{"NATS_URL=nats://cs:hunter2@127.0.0.1:1"}, nil, "(NATS URL nats://cs:xxxxx@127.0.0.1:1, from $NATS_URL)"},
		{"from the file", "  url: nats://127.0.0.1:1\n", []string{"NATS_URL=nats://127.0.0.1:2"}, nil, "(NATS URL nats://127.0.0.1:1, from nats.url)"},
		{"from the flag", "  url: nats://127.0.0.1:2\n", []string{"NATS_URL=nats://127.0.0.1:2"}, []string{"--nats", "nats://127.0.0.1:1"}, "(NATS URL nats://127.0.0.1:1, from --nats)"},
		{"the flag over nats.listen", "  listen: 127.0.0.1:0\n", nil, []string{"--nats", "nats://127.0.0.1:1"}, "(NATS URL nats://127.0.0.1:1, from --nats)"},
		{"ha has no embedded server", "  listen: 127.0.0.1:0\n", []string{"NATS_URL=nats://127.0.0.1:1"}, nil, "(NATS URL nats://127.0.0.1:1, from $NATS_URL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := natsConfig(t, tc.nats)
			if tc.name == "ha has no embedded server" {
				editFile(t, cfg, func(s string) string { return s + "ha:\n  lease_ttl: 6s\n" })
			}
			args := append([]string{"produce", "--config", cfg}, tc.args...)
			status, out := runBin(t, append(tc.env, key), args...)
			if status != 1 || !strings.Contains(out, "cometstream: connect to NATS: ") || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want 1; output should say %q:\n%s", status, tc.says, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("the password of the URL was printed:\n%s", out)
			}
		})
	}

	// nats.listen in the file: the embedded server, $NATS_URL or not.
	listen := freeAddr(t)
	cfg := natsConfig(t, fmt.Sprintf("  listen: %s\n  max_age: 1h\n", listen))
	p := testenv.Start(t, "producer", []string{key, "NATS_URL=nats://127.0.0.1:1"}, "produce", "--config", cfg, "--log-format", "json")
	testenv.WaitFor(t, "the producer to produce", func() bool { return strings.Contains(p.Logs(), `"msg":"producing"`) })
	logs := p.Logs()
	for _, want := range []string{
		`"msg":"nats.listen is set in the configuration: starting the embedded server, not connecting to $NATS_URL`,
		`"msg":"embedded NATS server","url":"nats://` + listen + `","version":"`,
		`"msg":"producing","nats":"nats://` + listen + `","from":"the embedded server (nats.listen)"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the producer's log lacks %s:\n%s", want, logs)
		}
	}
	// The server's banner is debug: not in an info log.
	for _, banner := range []string{"Starting nats-server", "JETSTREAM", "Starting JetStream", "Server is ready"} {
		if strings.Contains(logs, banner) {
			t.Errorf("the embedded server's banner is in the info log (%q):\n%s", banner, logs)
		}
	}
	_, js := testenv.Connect(t, "nats://"+listen)
	s, err := js.Stream(context.Background(), "COMET")
	if err != nil || s.CachedInfo().Config.MaxAge != time.Hour {
		t.Errorf("the embedded server on nats.listen has no stream COMET with max_age 1h: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, p.Tail(2000))
	}
}

// TestStopDuringStartUp: SIGTERM while the producer waits to claim the
// stream is a clean stop (exit 0), and leaves the claim it was watching
// alone.
func TestStopDuringStartUp(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	ctx := context.Background()
	kv, err := w.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet"), History: 5})
	if err != nil {
		t.Fatal(err)
	}
	// A producer that stopped renewing its claim: the new one watches it
	// for seconds before taking it over.
	rec, _ := json.Marshal(map[string]any{"instance": "other", "host": "elsewhere", "pid": 1, "since": time.Now().UTC()})
	rev, err := kv.Put(ctx, event.WriterKey, rec)
	if err != nil {
		t.Fatal(err)
	}
	p := w.produce(t)
	testenv.WaitFor(t, "the producer to watch the claim", func() bool {
		return strings.Contains(p.Logs(), `"msg":"another producer claims the stream: watching whether it renews its claim before taking it over","holder":"other"`)
	})
	if err := p.Stop(); err != nil {
		t.Errorf("SIGTERM during start-up: %v, want exit 0\n%s", err, p.Logs())
	}
	if logs := p.Logs(); !strings.Contains(logs, `"msg":"stopped while starting"`) || strings.Contains(logs, "cometstream: ") || strings.Contains(logs, `"msg":"producing"`) {
		t.Errorf("want a clean stop during start-up, before producing, and no error:\n%s", logs)
	}
	if e, err := kv.Get(ctx, event.WriterKey); err != nil || e.Revision() != rev {
		t.Errorf("the claim of the producer being watched was touched: %v (revision %d, was %d)", err, e.Revision(), rev)
	}
}

// TestTakenHTTPListenIsConfiguration: a taken http.listen (produce) or
// --http (sinks) exits 2, naming the setting to change.
func TestTakenHTTPListenIsConfiguration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	w := newStack(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	setHTTPListen(t, w.config, taken)
	if status, out := runBin(t, w.env, "produce", "--config", w.config); status != 2 || !strings.Contains(out, "cometstream: http.listen: ") {
		t.Errorf("produce with a taken http.listen: exit %d, want 2 naming http.listen:\n%s", status, out)
	}
	if status, out := runBin(t, nil, "sink", "sqlite", "--nats", w.url, "--db", filepath.Join(w.dir, "s.db"), "--http", taken); status != 2 || !strings.Contains(out, "cometstream: --http: ") {
		t.Errorf("sink with a taken --http: exit %d, want 2 naming --http:\n%s", status, out)
	}
}

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

// TestSourcesOfOneCometShareTheLimit: two sources naming the same COMET
// (one base_url with a trailing slash) as the same user are one COMET user,
// whose 10 calls a second they share: passes of both at once never exceed
// it.
func TestSourcesOfOneCometShareTheLimit(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 4, RateLimit: 10, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 150, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 150, User: "federation"},
	}})
	t.Setenv("K_PERSONS", sim.Key("persons"))
	t.Setenv("K_MATCHES", sim.Key("matches"))
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`
data_dir: %s
sources:
  - name: faw
    base_url: %s
    reports:
      - {name: persons, api_key_env: K_PERSONS, user: federation, key: [personId], page_size: 10}
  - name: faw-again
    base_url: %s/
    reports:
      - {name: matches, api_key_env: K_MATCHES, user: federation, key: [competitionId, matchNo], page_size: 10}
`, t.TempDir(), base, base)))
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	reports, err := producerReports(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if reports[0].Comet.Limiter != reports[1].Comet.Limiter || reports[0].Group != reports[1].Group {
		t.Errorf("the reports of one COMET user have limiters %p and %p, groups %q and %q", reports[0].Comet.Limiter, reports[1].Comet.Limiter, reports[0].Group, reports[1].Group)
	}
	if !strings.Contains(logs.String(), "share one rate limit") {
		t.Errorf("no warning that the sources share a limit:\n%s", logs.String())
	}

	srv := testenv.StartNATS(t, t.TempDir())
	nc, _ := testenv.Connect(t, srv.ClientURL())
	p, err := producer.New(producer.Config{Conn: nc, Stream: "COMET", Prefix: "comet", Reports: reports, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range []string{"persons", "matches"} {
		wg.Go(func() {
			if _, err := p.Poll(ctx, r); err != nil {
				t.Errorf("pass of %s: %v", r, err)
			}
		})
	}
	wg.Wait()
	st := sim.Stats()
	if u := st.Users["federation"]; u.Calls < 30 {
		t.Fatalf("%d calls in %s: too few to tell", u.Calls, time.Since(start))
	}
	if st.Violations != 0 {
		t.Errorf("the two sources together made more than 10 calls a second %d times: %+v", st.Violations, st.Users["federation"].Recent)
	}
}

// TestRetentionTrimsTheStreamNotTheSnapshot runs the producer with
// nats.max_age and nats.max_bytes: the stream has them on the server, its
// first pass's events expire while the snapshot buckets keep every row, a
// sink started after that converges from the snapshot, and a restart with
// other limits changes the stream and recovers without a warning.
func TestRetentionTrimsTheStreamNotTheSnapshot(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 8, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 60}, {Name: "fees", Kind: "fees", Rows: 30},
	}})
	// limits writes the nats section's retention, in place of any before.
	limits := func(lines string) {
		editFile(t, w.config, func(s string) string {
			if i := strings.Index(s, "  max_age:"); i >= 0 {
				s = s[:i] + s[strings.Index(s, "http:"):]
			}
			return strings.Replace(s, "http:", lines+"http:", 1)
		})
	}
	limits("  max_age: 2s\n  max_bytes: 64MiB\n")
	prod := w.produce(t)
	_, first := waitSynced(t, w.js, "persons", 0, 30*time.Second)
	waitSynced(t, w.js, "fees", 0, 30*time.Second)

	ctx := context.Background()
	s := eventStream(t, w.js)
	if c := s.CachedInfo().Config; c.MaxAge != 2*time.Second || c.MaxBytes != 64<<20 {
		t.Fatalf("the stream has max age %s, max bytes %d; want 2s, %d", c.MaxAge, c.MaxBytes, 64<<20)
	}
	for _, r := range []string{"persons", "fees"} {
		if err := w.sim.Update(r, 3); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the first pass to expire from the stream", func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.FirstSeq > first
	})

	db := filepath.Join(w.dir, "late.db")
	sink := testenv.Start(t, "sink", nil, "sink", "sqlite", "--nats", w.url, "--db", db, "--log-format", "json")
	testenv.WaitFor(t, "a sink started after the trim to converge", func() bool {
		for _, r := range w.sim.Reports() {
			rows := readSQLite(t, db, r.Name)
			if rows == nil || sinktest.Diff(w.sim.Columns(r.Name), w.sim.KeyColumns(r.Name), w.sim.Rows(r.Name), rows) != "" {
				return false
			}
		}
		return true
	})

	if err := prod.Stop(); err != nil {
		t.Fatalf("producer: %v\n%s", err, prod.Tail(2000))
	}
	limits("  max_age: 1h\n")
	prod = w.produce(t)
	testenv.WaitFor(t, "the restarted producer to produce", func() bool { return strings.Contains(prod.Logs(), `"msg":"producing"`) })
	if c := eventStream(t, w.js).CachedInfo().Config; c.MaxAge != time.Hour || c.MaxBytes != -1 {
		t.Errorf("after a restart with max_age 1h and no max_bytes the stream has max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	logs := prod.Logs()
	if !strings.Contains(logs, `"msg":"stream retention changed to the configuration's","stream":"COMET","max_age":"1h0m0s","max_bytes":"unlimited","was_max_age":"2s","was_max_bytes":"67108864"`) {
		t.Errorf("the restart does not say it changed the limits:\n%s", logs)
	}
	if strings.Contains(logs, `"level":"WARN"`) {
		t.Errorf("a restart over a stream its retention trimmed warned:\n%s", logs)
	}
	w.sim.Update("fees", 2)
	testenv.WaitFor(t, "the sink to follow the restarted producer", func() bool {
		rows := readSQLite(t, db, "fees")
		return rows != nil && sinktest.Diff(w.sim.Columns("fees"), w.sim.KeyColumns("fees"), w.sim.Rows("fees"), rows) == ""
	})
	stop(t, sink, prod)
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
