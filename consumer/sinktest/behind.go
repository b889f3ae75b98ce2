package sinktest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// storeBehindWhileRunning: a running sink falls behind the stream's
// retention (its database stalls while rows change, and the stream drops
// the events it had not read). It must notice, and end equal to the report
// rather than skip what it never saw.
//
// With batches of one event the range dropped starts a batch; with batches
// of 25 it may fall inside one, between two events that arrived together.
func storeBehindWhileRunning(t *testing.T, st StoreTarget) {
	for _, batch := range []int{1, 25} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) { behindWhileRunning(t, st, batch) })
	}
}

func behindWhileRunning(t *testing.T, st StoreTarget, batch int) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 80})
	w.SettleAll()
	s := st.Open(t, fmt.Sprint("behind", batch))
	g := &gatedStore{Store: s, blocked: make(chan struct{})}
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "behind", Store: g, BatchSize: batch,
	})
	waitStore(t, w, st, s)

	// The database stalls on the next batch; meanwhile rows change eight
	// times over and 5 go, and the stream keeps only its last two events:
	// far more than a batch and what the client and the reader hold ahead
	// (a few batches) are dropped.
	release := g.hold()
	for range 8 {
		w.Update("persons", 60)
		w.Poll("persons")
	}
	w.Delete("persons", 5)
	w.SettleAll()
	<-g.blocked
	trimStream(t, w, 2)
	release()
	waitStore(t, w, st, s)
	testenv.WaitFor(t, "the sink's warning that the stream dropped events it had not applied", func() bool {
		return strings.Contains(logs.String(), "dropped events before this sink applied them")
	})
}

// gatedStore is a store whose Apply can be made to wait, as a stalled
// database does. It is no BulkLoader: bootstraps go through Apply too.
type gatedStore struct {
	consumer.Store
	mu      sync.Mutex
	gate    chan struct{} // closed to let Apply through; nil: open
	blocked chan struct{} // closed when an Apply first waits at the gate
	once    sync.Once
}

// hold makes the next Apply wait until the returned release is called.
func (g *gatedStore) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate := make(chan struct{})
	g.gate = gate
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

func (g *gatedStore) Apply(ctx context.Context, b *consumer.Batch) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.once.Do(func() { close(g.blocked) })
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Apply(ctx, b)
}

// storeNoRestartLoop: a report the producer keeps a state record for but
// has no snapshot of (COMET refused its key from the first pass), in a
// stream whose retention dropped its first events, is followed from the
// stream's start and does not send the sink round a loop of restarts.
func storeNoRestartLoop(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30})
	w.SettleAll()
	ctx := context.Background()
	state, err := w.JetStream().KeyValue(ctx, event.StateBucketName(event.DefaultPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Put(ctx, "ghost", []byte(`{"checkpoint":0,"key":["id"]}`)); err != nil {
		t.Fatal(err)
	}
	w.Update("persons", 5)
	w.SettleAll()
	trimStream(t, w, 3)
	s := st.Open(t, "ghost")
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "ghost", Store: s,
	})
	waitStore(t, w, st, s)
	// One pass more, seen by the sink: it has read past the dropped range.
	w.Poll("persons")
	stream, err := w.JetStream().Stream(ctx, event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, event.ReportSubject(event.DefaultPrefix, "persons", event.KindSynced))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the sink at the last pass's synced event", func() bool {
		pos, err := s.Positions(ctx)
		return err == nil && pos["persons"] >= last.Sequence
	})
	if n := strings.Count(logs.String(), "starting again from the store's positions"); n > 0 {
		t.Errorf("the sink started again %d times:\n%s", n, logs.String())
	}
}

// trimStream keeps only the stream's last n events.
func trimStream(t *testing.T, w *cometstreamtest.World, n int64) {
	t.Helper()
	ctx := context.Background()
	stream, err := w.JetStream().Stream(ctx, event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgs = n
	if _, err := w.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// runLogged runs Materialize with cfg (its JetStream the world's) in the
// background until the test ends, and returns its logs.
func runLogged(t *testing.T, w *cometstreamtest.World, cfg consumer.MaterializeConfig) *testenv.Buffer {
	logs := &testenv.Buffer{}
	cfg.JetStream, cfg.Logger = w.JetStream(), slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Materialize(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Materialize: %v", err)
		}
	})
	return logs
}

// storeFailing: a store that refuses batches for a while. The sink says
// so as it goes (OnFailing, counting, and cometstream_sink_batch_failures),
// loses nothing meanwhile, and once the store takes batches again says
// that too and converges.
func storeFailing(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 40})
	w.SettleAll()
	s := st.Open(t, "failing")
	f := &failingStore{Store: s}
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var counts []int
	applied := make(chan struct{}, 1)
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "failing", Store: f, Registerer: reg, Backoff: []time.Duration{20 * time.Millisecond},
		OnFailing: func(err error, n int) {
			mu.Lock()
			counts = append(counts, n)
			mu.Unlock()
		},
		OnApplied: func([]*consumer.Message) {
			select {
			case applied <- struct{}{}:
			default:
			}
		},
	})
	waitStore(t, w, st, s)
	f.refuse(true)
	w.Update("persons", 10)
	w.Poll("persons")
	failures := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "cometstream_sink_batch_failures" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	testenv.WaitFor(t, "the sink to fail a batch five times", func() bool { return failures() >= 5 })
	if !strings.Contains(logs.String(), "the sink cannot apply a batch") {
		t.Errorf("the log does not say the sink is failing:\n%s", logs)
	}
	for len(applied) > 0 {
		<-applied
	}
	f.refuse(false)
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("the sink did not apply a batch once the store took them again")
	}
	waitStore(t, w, st, s)
	if got := failures(); got != 0 {
		t.Errorf("cometstream_sink_batch_failures is %v once batches go in again, want 0", got)
	}
	if !strings.Contains(logs.String(), "the sink applies batches again") {
		t.Errorf("the log does not say the sink applies batches again:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("OnFailing counted %v, want 1, 2, 3, ...", counts)
		}
	}
	if len(counts) < 5 {
		t.Errorf("OnFailing was called %d times, want at least 5", len(counts))
	}
}

// failingStore refuses every Apply while refusing.
type failingStore struct {
	consumer.Store
	refusing atomic.Bool
}

func (f *failingStore) refuse(on bool) { f.refusing.Store(on) }

func (f *failingStore) Apply(ctx context.Context, b *consumer.Batch) error {
	if f.refusing.Load() {
		return errors.New("the database refuses the batch")
	}
	return f.Store.Apply(ctx, b)
}
