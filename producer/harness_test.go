package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/replay"
	"github.com/cometstream/cometstream/internal/simulator"
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
	logs *syncBuffer
	reg  *prometheus.Registry
	p    *Producer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startNATS(t testing.TB, dir string) *server.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func newEnv(t *testing.T, specs ...simulator.ReportSpec) *env {
	t.Helper()
	srv := startNATS(t, t.TempDir())
	logs := &syncBuffer{}
	nc, err := natsconn.Connect(natsconn.Options{URL: srv.ClientURL(), Publisher: true}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	sim, err := simulator.New(simulator.Config{Seed: 42, Reports: specs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, nc: nc, js: js, sim: sim, base: hs.URL, logs: logs}
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
	e.reg = prometheus.NewRegistry()
	p, err := New(Config{
		Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: reports,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registerer: e.reg,
		MaxInFlight: 64, CheckpointEvery: 50,
	})
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

// streamEvent is one message of the stream, decoded.
type streamEvent struct {
	Seq     uint64
	Subject string
	MsgID   string
	Raw     []byte
	*event.Event
}

// events reads the whole stream.
func (e *env) events() []streamEvent {
	e.t.Helper()
	return e.eventsAfter(0)
}

// eventsAfter reads the stream past a sequence.
func (e *env) eventsAfter(seq uint64) []streamEvent {
	e.t.Helper()
	var out []streamEvent
	_, err := replay.Read(context.Background(), e.js, "COMET", jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq + 1,
	}, func(m jetstream.Msg) error {
		md, _ := m.Metadata()
		ev, err := event.Decode(m.Data())
		if err != nil {
			e.t.Fatalf("seq %d %s: %v", md.Sequence.Stream, m.Subject(), err)
		}
		if ct := m.Headers().Get("Content-Type"); ct != event.ContentType {
			e.t.Errorf("seq %d: Content-Type %q", md.Sequence.Stream, ct)
		}
		out = append(out, streamEvent{Seq: md.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Raw: m.Data(), Event: ev})
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// kv returns a bucket's live keys and values.
func (e *env) kv(report string) map[string]string {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), event.BucketName("comet", report))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	lister, err := kv.ListKeys(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for k := range lister.Keys() {
		v, err := kv.Get(context.Background(), k)
		if err != nil {
			e.t.Fatal(err)
		}
		out[k] = string(v.Value())
	}
	return out
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

// canonical renders a row the way the contract defines it, independently of
// the producer: keys sorted, no HTML escaping.
func canonical(t testing.TB, row event.Row) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]event.Value(row)); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// want is what the bucket of a report should hold: the simulator's rows by
// token.
func (e *env) want(report string) map[string]string {
	key := e.sim.KeyColumns(report)
	out := map[string]string{}
	for _, row := range e.sim.Rows(report) {
		parts := make([]string, len(key))
		for i, k := range key {
			parts[i] = event.TokenPart(row[k].Raw)
		}
		out[strings.Join(parts, "/")] = canonical(e.t, row)
	}
	return out
}

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
func count(evs []streamEvent) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

func since(evs []streamEvent, seq uint64) []streamEvent {
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Seq > seq })
	return evs[i:]
}
