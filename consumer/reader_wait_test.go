package consumer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestReaderWaitsForTheStream: a reader started before the producer has
// created the stream waits for it, then reads every event.
func TestReaderWaitsForTheStream(t *testing.T) {
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	var logs testenv.Buffer
	r, err := consumer.NewReader(consumer.ReaderConfig{JetStream: js, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 1000)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(_ context.Context, batch []*consumer.Message) error {
			for _, m := range batch {
				got <- m.Seq
			}
			return nil
		})
	}()
	testenv.WaitFor(t, "the reader to say it waits for the stream", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned before the stream existed: %v", err)
		default:
		}
		return strings.Contains(logs.String(), "waiting for the producer to create the stream")
	})
	_, _, last := sinktest.PublishPersons(t, js, 20)
	for want := uint64(1); want <= last; want++ {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("read %d, want %d", seq, want)
			}
		case err := <-done:
			t.Fatalf("Run returned: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d never read", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
