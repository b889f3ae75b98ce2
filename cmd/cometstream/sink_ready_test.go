package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/internal/config"
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
