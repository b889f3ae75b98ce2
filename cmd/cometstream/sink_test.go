package main

// Tests of a sink run in this process, so that the race detector sees
// both sides: its /readyz while it bootstraps, and its lag and position
// gauges while its database stops taking writes.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// positionsGate holds Positions, the first thing Materialize asks, until
// released: the sink is then running but not bootstrapped.
type positionsGate struct {
	consumer.Store
	gate chan struct{}
}

func (s *positionsGate) Positions(ctx context.Context) (map[string]uint64, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Positions(ctx)
}

// gatedStore is a Store whose Apply waits while the gate is held: a sink
// that has stopped applying, with its database and position intact.
type gatedStore struct {
	consumer.Store
	gate sync.RWMutex
}

func (g *gatedStore) Apply(ctx context.Context, b *consumer.Batch) error {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return g.Store.Apply(ctx, b)
}

// TestSinkLagFollowsCatchUp: a sink whose database stops taking writes
// while the producer publishes shows a lag of at least the events it has
// not applied (and at most the sequences it is behind), and 0 once it has
// caught up, with its position at the report's last event.
func TestSinkLagFollowsCatchUp(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 8, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 40}, {Name: "fees", Kind: "fees", Rows: 15},
	}})
	producer := w.produce(t)
	w.waitFirstPasses(t)
	db := openSQLite(t, filepath.Join(w.dir, "sink.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &gatedStore{Store: db}
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	go func() {
		done <- consumer.Materialize(ctx, consumer.MaterializeConfig{JetStream: w.js, Durable: "lag", Store: store, Registerer: reg})
	}()
	position := func(r string) float64 { return gathered(t, reg, "cometstream_sink_position", "report", r) }
	lag := func(r string) float64 { return gathered(t, reg, "cometstream_sink_lag_events", "report", r) }
	testenv.WaitFor(t, "the sink at the end of each report", func() bool {
		return position("persons") == float64(lastSeq(t, w.js, "persons")) && lag("persons") == 0 && position("fees") == float64(lastSeq(t, w.js, "fees")) && lag("fees") == 0
	})

	// The database stops taking writes; the producer publishes changes.
	store.gate.Lock()
	gateHeld := true
	defer func() {
		if gateHeld {
			store.gate.Unlock()
		}
	}()
	// The database's own position: the gauge follows it once the batch
	// in hand, if any, has been recorded.
	positions, err := db.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pos := positions["persons"]
	testenv.WaitFor(t, "the position gauge at the database's", func() bool { return position("persons") == float64(pos) })
	for i := range 5 {
		if err := w.sim.UpdateAt("persons", i); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the producer to publish the updates", func() bool {
		n := 0
		for _, ev := range testenv.Events(t, w.js, event.DefaultStream, pos) {
			if ev.Row != nil && ev.Row.Report == "persons" && ev.Row.Op == event.OpUpdated {
				n++
			}
		}
		return n >= 5
	})
	if err := producer.Stop(); err != nil {
		t.Fatalf("producer: %v\n%s", err, producer.Tail(2000))
	}
	// The stream no longer moves: what the sink has not applied is known.
	last := lastSeq(t, w.js, "persons")
	behind := 0
	for _, ev := range testenv.Events(t, w.js, event.DefaultStream, pos) {
		if s, err := event.ParseSubject(event.DefaultPrefix, ev.Subject); err == nil && s.Report == "persons" {
			behind++
		}
	}
	testenv.WaitFor(t, fmt.Sprintf("a lag of persons between %d events and %d sequences", behind, last-pos), func() bool {
		l := lag("persons")
		return l >= float64(behind) && l <= float64(last-pos) && l > 0
	})
	t.Logf("persons: lag %v with %d events and %d sequences not applied", lag("persons"), behind, last-pos)
	if position("persons") != float64(pos) {
		t.Errorf("position %v while the database takes no writes, want %d", position("persons"), pos)
	}

	store.gate.Unlock()
	gateHeld = false
	testenv.WaitFor(t, "the lag back to 0 once caught up", func() bool {
		return lag("persons") == 0 && position("persons") == float64(last) && lag("fees") == 0
	})
	if got := gathered(t, reg, "cometstream_sink_events_total", "report", "persons", "op", "updated"); got < 5 {
		t.Errorf("cometstream_sink_events_total{report=persons,op=updated} = %v, want at least the 5 updates", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Materialize: %v", err)
	}
}

// TestSinkReadyzInProcess runs a sink in this process (so that the race
// detector sees both sides) and asks its /readyz while Materialize works:
// 503 before the bootstrap is done, 200 after.
func TestSinkReadyzInProcess(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	_, _, last := sinktest.PublishPersons(t, js, 50)
	st := openSQLite(t, filepath.Join(dir, "sink.db"))
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	f := &sinkFlags{stream: config.DefaultStream, prefix: config.DefaultSubjectPrefix, http: addr}
	f.nats.URL = srv.ClientURL()
	gated := &positionsGate{Store: st, gate: make(chan struct{})}
	var applied uint64
	appliedc := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- materialize(ctx, f, "sqlite", "t", "t", gated, slog.New(slog.NewTextHandler(io.Discard, nil)), func(msgs []*consumer.Message) {
			appliedc <- msgs[len(msgs)-1].Seq
		})
	}()
	testenv.WaitFor(t, "/readyz to answer", func() bool { return readyz(addr) != 0 })
	if got := readyz(addr); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the bootstrap: %d, want 503", got)
	}
	close(gated.gate)
	testenv.WaitFor(t, "/readyz 200 once bootstrapped", func() bool { return readyz(addr) == http.StatusOK })
	for applied < last {
		select {
		case applied = <-appliedc:
		case err := <-done:
			t.Fatalf("the sink stopped: %v", err)
		}
		if readyz(addr) != http.StatusOK {
			t.Fatalf("/readyz went back to not ready while applying")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("materialize: %v", err)
	}
}
