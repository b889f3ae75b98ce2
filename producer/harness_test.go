package producer

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// env is one test's world: an embedded NATS server with JetStream in a
// temporary directory, a simulator over real HTTP, and a producer.
type env struct {
	t    *testing.T
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sim  *simulator.Simulator
	base string
	logs *testenv.Buffer
	reg  *prometheus.Registry
	p    *Producer
}

func newEnv(t *testing.T, specs ...simulator.ReportSpec) *env {
	t.Helper()
	return newEnvOn(t, testenv.StartNATS(t, t.TempDir()), specs...)
}

// newEnvOn is newEnv on a server the test started.
func newEnvOn(t *testing.T, srv *server.Server, specs ...simulator.ReportSpec) *env {
	t.Helper()
	logs := &testenv.Buffer{}
	nc, js := testenv.ConnectWith(t, natsconn.Options{URL: srv.ClientURL(), Publisher: true}, slog.New(slog.NewTextHandler(logs, nil)))
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 42, Reports: specs})
	return &env{t: t, srv: srv, nc: nc, js: js, sim: sim, base: base, logs: logs}
}

// newPolledPersons is newEnv with one persons report of rows rows, a
// producer open on it (its configuration changed by mods) and its first
// pass done.
func newPolledPersons(t *testing.T, rows int, mods ...func(*ReportConfig)) *env {
	t.Helper()
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: rows})
	e.open(e.reportConfig("persons", mods...))
	e.poll("persons")
	return e
}

// reportConfig returns a producer configuration of a simulated report with
// its natural key, 25 rows a page and an interval long enough that tests
// drive every pass with Poll.
func (e *env) reportConfig(name string, mods ...func(*ReportConfig)) ReportConfig {
	rc := ReportConfig{
		Name: name, Key: e.sim.KeyColumns(name), Interval: time.Hour, PageSize: 25, MaxDeleteFraction: 0.5,
		Comet: comet.Config{BaseURL: e.base, APIKey: e.sim.Key(name), Limiter: comet.NewLimiter(1000),
			MaxRetries: 2, Backoff: comet.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}},
	}
	for _, m := range mods {
		m(&rc)
	}
	return rc
}

// open starts a producer over the given reports.
func (e *env) open(reports ...ReportConfig) *Producer {
	e.t.Helper()
	return e.openWith(func(*Config) {}, reports...)
}

// openWith starts a producer with a changed configuration.
func (e *env) openWith(mod func(*Config), reports ...ReportConfig) *Producer {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	cfg := Config{
		Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: reports,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registerer: e.reg,
		MaxInFlight: 64, CheckpointEvery: 50,
	}
	mod(&cfg)
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.p = p
	return p
}

func (e *env) poll(report string) *event.Synced {
	e.t.Helper()
	s, err := e.p.Poll(context.Background(), report)
	if err != nil {
		e.t.Fatalf("poll %s: %v", report, err)
	}
	return s
}

// testClock is a clock for Config.Now that a test moves by hand; it starts
// at 2026-12-01 20:00 UTC.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// Now is the clock's time.
func (c *testClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Add moves the clock on by d.
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

type streamEvent = testenv.Event

// lastSeq is the stream's last sequence, 0 while it is empty.
func (e *env) lastSeq() uint64 {
	evs := e.events()
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// shapes switches a simulated report to what a real COMET deployment does.
func (e *env) shapes(report string, sh simulator.Shapes) {
	e.t.Helper()
	if err := e.sim.SetShapes(report, sh); err != nil {
		e.t.Fatal(err)
	}
}

// pageShifter changes a simulated report during passes: at most once a
// pass, right after the page it drew is served, it makes a change of the
// kind it drew.
type pageShifter struct {
	mu   sync.Mutex // rng and kind are shared with the simulator's goroutines
	rng  *rand.Rand
	kind int
	at   atomic.Int32 // the page after which to change; negative: none
}

// newPageShifter hooks a pageShifter, seeded, into e's simulator; change
// makes a change of a kind to the report, drawing from rng as it needs.
func newPageShifter(e *env, seed uint64, change func(report string, kind int, rng *rand.Rand)) *pageShifter {
	s := &pageShifter{rng: rand.New(rand.NewPCG(seed, seed))}
	s.at.Store(-1)
	e.sim.OnPage(func(report string, page int) {
		if !s.at.CompareAndSwap(int32(page), -1) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		change(report, s.kind, s.rng)
	})
	return s
}

// next draws the next pass's change: one of kinds, after a page drawn from
// [-3, slots-3), where a negative page means no change this pass.
func (s *pageShifter) next(kinds, slots int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kind = s.rng.IntN(kinds)
	s.at.Store(int32(s.rng.IntN(slots)) - 3)
}

// streamConfig reads the event stream's configuration from the server.
func (e *env) streamConfig() jetstream.StreamConfig {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), "COMET")
	if err != nil {
		e.t.Fatal(err)
	}
	return s.CachedInfo().Config
}

// stateBucket is the producer's bucket of report state records.
func (e *env) stateBucket() jetstream.KeyValue {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), event.StateBucketName("comet"))
	if err != nil {
		e.t.Fatal(err)
	}
	return kv
}

// state reads a report's state record and its revision.
func (e *env) state(report string) (event.ReportState, uint64) {
	e.t.Helper()
	st, rev, err := loadState(context.Background(), e.stateBucket(), report)
	if err != nil {
		e.t.Fatal(err)
	}
	return st, rev
}

// events reads the whole stream.
func (e *env) events() []streamEvent { return e.eventsAfter(0) }

// eventsAfter reads the stream past a sequence.
func (e *env) eventsAfter(seq uint64) []streamEvent { return testenv.Events(e.t, e.js, "COMET", seq) }

// kv returns a bucket's live keys and values.
func (e *env) kv(report string) map[string]string {
	return testenv.Bucket(e.t, e.js, event.BucketName("comet", report))
}

// kvLastSeq is the last sequence of a bucket's stream: it moves with every write.
func (e *env) kvLastSeq(report string) uint64 {
	s, err := e.js.Stream(context.Background(), "KV_"+event.BucketName("comet", report))
	if err != nil {
		e.t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	return info.State.LastSeq
}

func canonical(_ testing.TB, row event.Row) string { return testenv.Canonical(row) }

func (e *env) want(report string) map[string]string { return testenv.Want(e.sim, report) }

func (e *env) assertKV(report string) {
	e.t.Helper()
	got, want := e.kv(report), e.want(report)
	for k, w := range want {
		if g, ok := got[k]; !ok {
			e.t.Errorf("bucket lacks %s", k)
		} else if g != w {
			e.t.Errorf("bucket %s:\n got %s\nwant %s", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			e.t.Errorf("bucket has %s, which the report does not", k)
		}
	}
}

// count tallies events by type.
func count(evs []streamEvent) map[event.Type]int {
	m := map[event.Type]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

func since(evs []streamEvent, seq uint64) []streamEvent {
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Seq > seq })
	return evs[i:]
}
