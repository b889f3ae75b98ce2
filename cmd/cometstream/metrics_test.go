package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/opshttp"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
	"github.com/cometstream/cometstream/internal/version"
)

// sample is one line of a /metrics page.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseMetrics reads the samples of a page in the text format.
func parseMetrics(t *testing.T, body string) []sample {
	t.Helper()
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparseable /metrics line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// scrape fetches a /metrics page; "" when nothing answers.
func scrape(addr string) string {
	status, body := get("http://" + addr + "/metrics")
	if status != http.StatusOK {
		return ""
	}
	return body
}

// metricValue is the value of the series of a page with exactly these
// labels (name, value pairs); ok is false when there is none.
func metricValue(t *testing.T, body, name string, labels ...string) (float64, bool) {
	t.Helper()
	for _, s := range parseMetrics(t, body) {
		if s.name == name && sameLabels(s.labels, labels) {
			return s.value, true
		}
	}
	return 0, false
}

// scraped is metricValue on a fresh scrape, -1 when the series is absent.
func scraped(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(t, scrape(addr), name, labels...)
	if !ok {
		return -1
	}
	return v
}

func sameLabels(have map[string]string, want []string) bool {
	if len(have) != len(want)/2 {
		return false
	}
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// gathered is the value of a series in a registry, -1 when it is absent.
func gathered(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			if !sameLabels(have, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// metricLabels are the label names a cometstream metric may carry, one
// name for one thing across commands.
var metricLabels = []string{"report", "op", "endpoint", "status", "result", "user", "version", "commit", "goversion"}

// eventOps are the values of the op label: the row operations and the
// report event kinds, as the subjects name them.
func eventOps() []string {
	var ops []string
	for _, op := range event.Ops {
		ops = append(ops, string(op))
	}
	for _, k := range event.ReportKinds {
		ops = append(ops, string(k))
	}
	return ops
}

// TestMetricsOfEveryCommand runs produce, sink sqlite and sink webhook with
// their operations endpoints and reads each /metrics as Prometheus would:
// it passes the linter promtool uses, every cometstream series uses the
// shared label names, events are counted by op with the same values in the
// producer and the sink (and the same counts), and each says its build.
func TestMetricsOfEveryCommand(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 4, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 50}, {Name: "fees", Kind: "fees", Rows: 20},
	}})
	prodAddr := freeAddr(t)
	setHTTPListen(t, w.config, prodAddr)
	producer := w.produce(t)
	w.waitFirstPasses(t)
	sink := testenv.Start(t, "sink", nil, "sink", "sqlite", "--nats", w.url, "--db", filepath.Join(w.dir, "sink.db"), "--http", "127.0.0.1:0", "--log-format", "json")
	rcv := newWHReceiver(t, 200)
	hooks := writeFile(t, "webhooks.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET, start: all}\n", rcv.URL))
	bridge := testenv.Start(t, "bridge", whEnv, "sink", "webhook", "--nats", w.url, "--config", hooks, "--http", "127.0.0.1:0", "--log-format", "json")
	addrs := map[string]string{"produce": prodAddr, "sink sqlite": opsAddr(t, sink), "sink webhook": opsAddr(t, bridge)}

	// The sink may start from the snapshot: the updates after it are
	// events both sides count, under the same label and value.
	testenv.WaitFor(t, "the sink ready", func() bool { return readyz(addrs["sink sqlite"]) == 200 })
	for i := range 3 {
		if err := w.sim.UpdateAt("fees", i); err != nil {
			t.Fatal(err)
		}
	}
	updated := func(cmd, name string) float64 { return scraped(t, addrs[cmd], name, "report", "fees", "op", "updated") }
	testenv.WaitFor(t, "the producer and the sink to count the 3 updates of fees", func() bool {
		return updated("produce", "cometstream_events_total") == 3 && updated("sink sqlite", "cometstream_sink_events_total") == 3
	})
	testenv.WaitFor(t, "the webhook deliveries counted", func() bool {
		return scraped(t, addrs["sink webhook"], "cometstream_webhook_deliveries_total", "endpoint", "crm", "result", "delivered") >= 3
	})
	testenv.WaitFor(t, "every series of a refresh", func() bool {
		return scraped(t, addrs["sink sqlite"], "cometstream_sink_lag_events", "report", "fees") >= 0 &&
			scraped(t, addrs["sink webhook"], "cometstream_webhook_lag_events", "endpoint", "crm") >= 0 &&
			scraped(t, addrs["sink webhook"], "cometstream_webhook_dead_letters", "endpoint", "crm") >= 0
	})

	want := version.Get()
	for _, cmd := range []string{"produce", "sink sqlite", "sink webhook"} {
		body := scrape(addrs[cmd])
		if body == "" {
			t.Fatalf("%s: no /metrics", cmd)
		}
		t.Run(cmd+"/lint", func(t *testing.T) {
			problems, err := promlint.New(strings.NewReader(body)).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: %s", p.Metric, p.Text)
			}
		})
		t.Run(cmd+"/labels", func(t *testing.T) {
			for _, s := range parseMetrics(t, body) {
				if !strings.HasPrefix(s.name, "cometstream_") {
					continue
				}
				for l := range s.labels {
					if l != "le" && !slices.Contains(metricLabels, l) {
						t.Errorf("%s has label %q, not one of %v", s.name, l, metricLabels)
					}
				}
				if s.name == "cometstream_events_total" || s.name == "cometstream_sink_events_total" {
					if len(s.labels) != 2 || s.labels["report"] == "" || !slices.Contains(eventOps(), s.labels["op"]) {
						t.Errorf("%s%v: want labels report and op, op one of %v", s.name, s.labels, eventOps())
					}
				}
			}
		})
		t.Run(cmd+"/build_info", func(t *testing.T) {
			// The binary's commit may be stamped where the test's is not:
			// the toolchain is the same.
			n := 0
			for _, s := range parseMetrics(t, body) {
				if s.name != "cometstream_build_info" {
					continue
				}
				n++
				if s.value != 1 || s.labels["goversion"] != want.Go || s.labels["version"] == "" || s.labels["commit"] == "" || len(s.labels) != 3 {
					t.Errorf("cometstream_build_info%v %v, want version, commit and goversion %q, and 1", s.labels, s.value, want.Go)
				}
			}
			if n != 1 {
				t.Errorf("/metrics has %d cometstream_build_info series, want 1", n)
			}
		})
	}
	// One label name for one thing: the sink's synced and the producer's.
	if v := scraped(t, addrs["sink sqlite"], "cometstream_sink_events_total", "report", "fees", "op", "synced"); v < 1 {
		t.Errorf("the sink counted %v synced events of fees under op=\"synced\"", v)
	}
	t.Run("docs", func(t *testing.T) {
		var exposed []string
		for _, addr := range addrs {
			for _, s := range parseMetrics(t, scrape(addr)) {
				exposed = append(exposed, s.name)
			}
		}
		checkMetricDocs(t, exposed)
	})
	stop(t, bridge, sink, producer)
}

var metricNameRE = regexp.MustCompile(`cometstream_[a-z_]*[a-z]`)

// checkMetricDocs: docs/monitoring.md documents every cometstream metric
// a command exposed, and the alerts and the dashboard use only documented
// ones.
func checkMetricDocs(t *testing.T, exposed []string) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// A histogram's series are its name with a suffix.
	base := func(name string) string {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(b, "_seconds") {
				return b
			}
		}
		return name
	}
	documented := map[string]bool{}
	for _, row := range strings.Split(read("monitoring.md"), "\n") {
		if name, ok := strings.CutPrefix(row, "| `cometstream_"); ok {
			documented["cometstream_"+name[:strings.Index(name, "`")]] = true
		}
	}
	for _, name := range exposed {
		if strings.HasPrefix(name, "cometstream_") && !documented[base(name)] {
			t.Errorf("docs/monitoring.md does not document %s", base(name))
		}
	}
	for _, file := range []string{"alerts.yml", "grafana-dashboard.json"} {
		for _, name := range metricNameRE.FindAllString(read(file), -1) {
			if !documented[base(name)] {
				t.Errorf("docs/%s uses %s, which no command exposes (docs/monitoring.md does not document it)", file, name)
			}
		}
	}
}

// TestBuildInfo: the build's version, commit and toolchain as labels of a
// gauge that is 1, registered once however often it is asked.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	opshttp.RegisterBuildInfo(reg)
	opshttp.RegisterBuildInfo(reg) // a second registration is no error and no second series
	v := version.Get()
	if got := gathered(t, reg, "cometstream_build_info", "version", v.Version, "commit", v.Commit, "goversion", v.Go); got != 1 {
		t.Errorf("cometstream_build_info{version=%q,commit=%q,goversion=%q} = %v, want 1", v.Version, v.Commit, v.Go, got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Errorf("gathered %d families, want one series of cometstream_build_info", len(mfs))
	}
}

// TestWebhookLagWhileEndpointFails: the events an endpoint has not taken
// are its lag while it fails, 0 once it takes them; the bridge's JSON logs
// give the retry wait in seconds.
func TestWebhookLagWhileEndpointFails(t *testing.T) {
	url, js := testenv.StartStream(t)
	rcv := newWHReceiver(t, 503)
	retry := strings.TrimSuffix(strings.Repeat("1s, ", 40), ", ")
	cfg := writeFile(t, "webhooks.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET, retry: [%s]}\n", rcv.URL, retry))
	bridge := testenv.Start(t, "bridge", whEnv, "sink", "webhook", "--nats", url, "--config", cfg, "--http", "127.0.0.1:0", "--log-format", "json")
	addr := opsAddr(t, bridge)
	testenv.WaitFor(t, "crm's consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	const n = 5
	var ids []string
	for i := range n {
		ids = append(ids, whPublish(t, js, "players", i))
	}
	testenv.WaitFor(t, "a lag of every event while crm fails", func() bool {
		return scraped(t, addr, "cometstream_webhook_lag_events", "endpoint", "crm") == n
	})
	if info := consumerInfo(t, js, "webhook_crm"); info.NumPending+uint64(info.NumAckPending) != n {
		t.Errorf("consumer: %d pending and %d unacknowledged, the gauge said %d", info.NumPending, info.NumAckPending, n)
	}
	rcv.set(200)
	testenv.WaitFor(t, "every event delivered and the lag 0", func() bool {
		for _, id := range ids {
			if rcv.delivered(id) != 1 {
				return false
			}
		}
		return scraped(t, addr, "cometstream_webhook_lag_events", "endpoint", "crm") == 0
	})
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
	// retry: 1s, jittered by ±20%: in seconds, not nanoseconds.
	waits := 0
	sc := bufio.NewScanner(strings.NewReader(bridge.Logs()))
	for sc.Scan() {
		var line struct {
			Msg     string
			RetryIn *float64 `json:"retry_in"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "delivery failed; retrying" {
			continue
		}
		waits++
		if line.RetryIn == nil || *line.RetryIn < 0.7 || *line.RetryIn > 1.3 {
			t.Errorf("retry_in in %s, want seconds near 1", sc.Text())
		}
	}
	if waits == 0 {
		t.Errorf("the bridge logged no retry:\n%s", bridge.Tail(2000))
	}
}

// TestDeadLetterGaugeFollowsReplay: a running bridge's dead-letter gauge
// goes back to 0 after `sink webhook replay` (another process) empties the
// endpoint's dead letters, and Replay sets the gauge of its own bridge,
// to what is left when some fail and to 0 when none is left.
func TestDeadLetterGaugeFollowsReplay(t *testing.T) {
	url, js := testenv.StartStream(t)
	rcv := newWHReceiver(t, 500)
	path := writeFile(t, "webhooks.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: crm, url: %s, secrets_env: TEST_WEBHOOK_SECRET, retry: [50ms]}\n", rcv.URL))
	bridge := testenv.Start(t, "bridge", whEnv, "sink", "webhook", "--nats", url, "--config", path, "--http", "127.0.0.1:0", "--log-format", "json")
	addr := opsAddr(t, bridge)
	testenv.WaitFor(t, "crm's consumer", func() bool { return consumerInfo(t, js, "webhook_crm") != nil })
	dead := func() float64 { return scraped(t, addr, "cometstream_webhook_dead_letters", "endpoint", "crm") }
	for i := range 3 {
		whPublish(t, js, "players", i)
	}
	testenv.WaitFor(t, "3 dead letters, and no lag", func() bool {
		return dead() == 3 && scraped(t, addr, "cometstream_webhook_lag_events", "endpoint", "crm") == 0
	})

	rcv.set(200)
	status, out := runBin(t, whEnv, "sink", "webhook", "replay", "--nats", url, "--config", path)
	if status != 0 || !strings.Contains(out, "crm: 3 delivered, 0 still failing") {
		t.Fatalf("replay: exit %d\n%s", status, out)
	}
	testenv.WaitFor(t, "the running bridge's gauge back to 0 after the replay", func() bool { return dead() == 0 })

	// Replay in this process sets its own bridge's gauge.
	rcv.set(500)
	for i := 3; i < 5; i++ {
		whPublish(t, js, "players", i)
	}
	testenv.WaitFor(t, "2 new dead letters", func() bool { return dead() == 2 })
	t.Setenv("TEST_WEBHOOK_SECRET", whSecret)
	cfg, err := webhook.Load(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	b, err := webhook.New(cfg, webhook.Options{JetStream: js, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 { return gathered(t, reg, "cometstream_webhook_dead_letters", "endpoint", "crm") }
	if res, err := b.Replay(context.Background(), "crm"); err != nil || res["crm"].Failed != 2 {
		t.Fatalf("replay to a failing endpoint: %+v, %v", res, err)
	}
	if got := gauge(); got != 2 {
		t.Errorf("after a replay that failed: gauge %v, want the 2 left", got)
	}
	rcv.set(200)
	if res, err := b.Replay(context.Background(), "crm"); err != nil || res["crm"].Delivered != 2 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if got := gauge(); got != 0 {
		t.Errorf("after a replay that emptied the dead letters: gauge %v, want 0", got)
	}
	testenv.WaitFor(t, "the running bridge's gauge back to 0 again", func() bool { return dead() == 0 })
	if err := bridge.Stop(); err != nil {
		t.Errorf("bridge: %v\n%s", err, bridge.Tail(2000))
	}
}

// TestJSONLogDurationSeconds: the JSON handler writes a time.Duration as
// seconds, in groups too, and leaves other values alone; the text handler
// keeps Go's form.
func TestJSONLogDurationSeconds(t *testing.T) {
	tests := []struct {
		format string
		want   []string
	}{
		{"json", []string{`"duration":0.007`, `"g":{"wait":1.5}`, `"rows":7000000`, `"took":"1m30s"`}},
		{"text", []string{"duration=7ms", "g.wait=1.5s", "rows=7000000", "took=1m30s"}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got := captureStderr(t, func() {
				l := logFlags{level: "info", format: tt.format}
				log, err := l.logger()
				if err != nil {
					t.Fatal(err)
				}
				log.Info("pass", "duration", 7*time.Millisecond, slog.Group("g", "wait", 1500*time.Millisecond), "rows", 7000000, "took", (90 * time.Second).String())
			})
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s log line %q lacks %s", tt.format, got, w)
				}
			}
		})
	}
}

// captureStderr returns what f writes to os.Stderr.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	saved := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = saved }()
	f()
	os.Stderr = saved
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
