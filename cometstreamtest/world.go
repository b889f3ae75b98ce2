package cometstreamtest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/producer"
)

// Kinds of simulated report.
const (
	// Persons: personId, names, date of birth, club, photo…; keyed by personId.
	Persons = "persons"
	// Matches: keyed by competitionId and matchNo.
	Matches = "matches"
	// Fees: keyed by feeRef (text with spaces and slashes), AMOUNT values.
	Fees = "fees"
	// Events: match events with no unique key, keyed by content (["*"]).
	Events = "events"
)

// Report is one simulated report.
type Report struct {
	// Name is the report's name in subjects and buckets ([a-z0-9_-]+).
	Name string
	// Kind is Persons, Matches, Fees or Events.
	Kind string
	// Rows is how many rows it starts with.
	Rows int
}

// World is a NATS server, a simulated COMET and a producer.
type World struct {
	t       testing.TB
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	sim     *simulator.Simulator
	p       *producer.Producer
	reports []string
}

// New starts a world with the given reports (seeded: the same reports give
// the same data) and runs a first pass of each, so the stream and the
// buckets exist. It fails the test on any error.
func New(t testing.TB, reports ...Report) *World {
	t.Helper()
	// Not internal/testenv's helpers: they would bring the JSON Schema
	// validator into the test builds of every library user.
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := natsconn.Connect(natsconn.Options{URL: srv.ClientURL(), Publisher: true, Name: "cometstreamtest producer"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]simulator.ReportSpec, len(reports))
	for i, r := range reports {
		specs[i] = simulator.ReportSpec{Name: r.Name, Kind: r.Kind, Rows: r.Rows}
	}
	sim, err := simulator.New(simulator.Config{Seed: 1, Reports: specs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)
	w := &World{t: t, srv: srv, nc: nc, js: js, sim: sim}
	var rcs []producer.ReportConfig
	for _, r := range reports {
		w.reports = append(w.reports, r.Name)
		rcs = append(rcs, producer.ReportConfig{
			Name: r.Name, Key: sim.KeyColumns(r.Name), Interval: time.Hour, PageSize: 100, MaxDeleteFraction: 1,
			Comet: comet.Config{BaseURL: hs.URL, APIKey: sim.Key(r.Name), Limiter: comet.NewLimiter(1000),
				MaxRetries: 2, Backoff: comet.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}},
		})
	}
	w.p, err = producer.New(producer.Config{
		Conn: nc, Stream: event.DefaultStream, Prefix: event.DefaultPrefix, Reports: rcs,
		DuplicateWindow: time.Second, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.reports {
		w.Poll(r)
	}
	return w
}

// URL is the NATS server's client URL.
func (w *World) URL() string { return w.srv.ClientURL() }

// Conn is the producer's connection.
func (w *World) Conn() *nats.Conn { return w.nc }

// JetStream is a JetStream context on the producer's connection.
func (w *World) JetStream() jetstream.JetStream { return w.js }

// Poll runs one pass of a report now and returns its receipt.
func (w *World) Poll(report string) *event.Synced {
	w.t.Helper()
	s, err := w.p.Poll(context.Background(), report)
	if err != nil {
		w.t.Fatalf("poll %s: %v", report, err)
	}
	return s
}

// Settle polls a report until two consistent passes in a row publish
// nothing, so every change made so far is in the stream: a delete, and a
// content-keyed row, are published by the second of two consistent passes
// that agree on them.
func (w *World) Settle(report string) {
	w.t.Helper()
	quiet := 0
	for range 20 {
		if s := w.Poll(report); s.Consistent && s.Created+s.Updated+s.Deleted == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == 2 {
			return
		}
	}
	w.t.Fatalf("report %s did not settle in 20 passes", report)
}

// SettleAll settles every report.
func (w *World) SettleAll() {
	w.t.Helper()
	for _, r := range w.reports {
		w.Settle(r)
	}
}

// Reports returns the reports' names.
func (w *World) Reports() []string { return slices.Clone(w.reports) }

func (w *World) check(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

// Insert adds n new rows at the top of a report.
func (w *World) Insert(report string, n int) { w.t.Helper(); w.check(w.sim.Insert(report, n, 0)) }

// Update changes non-key values of n random rows of a report.
func (w *World) Update(report string, n int) { w.t.Helper(); w.check(w.sim.Update(report, n)) }

// UpdateAt changes non-key values of the row at position i.
func (w *World) UpdateAt(report string, i int) { w.t.Helper(); w.check(w.sim.UpdateAt(report, i)) }

// Delete removes n random rows of a report.
func (w *World) Delete(report string, n int) { w.t.Helper(); w.check(w.sim.Delete(report, n, -1)) }

// DeleteAt removes the row at position i.
func (w *World) DeleteAt(report string, i int) { w.t.Helper(); w.check(w.sim.Delete(report, 1, i)) }

// AddColumn adds a text column to a report (a changed schema).
func (w *World) AddColumn(report, key, name string) {
	w.t.Helper()
	w.check(w.sim.AddColumn(report, key, name))
}

// Rows returns a report's rows as COMET holds them now, in their event
// form (what a sink holds once the changes are settled), in report order.
func (w *World) Rows(report string) []event.Row { return w.sim.Rows(report) }

// Key returns a report's key columns (["*"] for content-keyed reports).
func (w *World) Key(report string) []string { return w.sim.KeyColumns(report) }

// Columns returns a report's columns.
func (w *World) Columns(report string) []event.Column { return w.sim.Columns(report) }

// Token returns the row key token of a row of a report (not of a
// content-keyed one, whose tokens depend on identical rows).
func (w *World) Token(report string, row event.Row) string {
	key := w.Key(report)
	texts := make([]string, len(key))
	for i, k := range key {
		texts[i] = row[k].Raw
	}
	return event.JoinToken(texts...)
}
