package sinktest

import (
	"context"
	"errors"
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
func storeBehindWhileRunning(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 80})
	w.SettleAll()
	s := st.Open(t, "behind")
	g := &gatedStore{Store: s, blocked: make(chan struct{})}
	logs := &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consumer.Materialize(ctx, consumer.MaterializeConfig{
			JetStream: w.JetStream(), Durable: "behind", Store: g, BatchSize: 1,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Materialize: %v", err)
		}
	})
	waitStore(t, w, st, s)

	// The database stalls on the next batch; meanwhile 30 rows change and
	// 5 go, and the stream keeps only its last two events: far more than a
	// batch of one and the little the reader holds ahead are dropped.
	release := g.hold()
	w.Update("persons", 30)
	w.Delete("persons", 5)
	w.SettleAll()
	<-g.blocked
	stream, err := w.JetStream().Stream(context.Background(), event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgs = 2
	if _, err := w.JetStream().UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
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
