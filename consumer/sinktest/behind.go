package sinktest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

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
