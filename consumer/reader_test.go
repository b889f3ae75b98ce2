package consumer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestReaderFollowsFromItsPositionAndNeverSkips: a Reader starts where its
// caller says, hands every event in order, and retries a failing handler
// until it succeeds.
func TestReaderFollowsFromItsPositionAndNeverSkips(t *testing.T) {
	js := world(t)
	for n := 1; n <= 30; n++ {
		publishRow(t, js, "players", n)
	}
	r, err := NewReader(ReaderConfig{JetStream: js, StartSeq: 11, BatchSize: 4, Backoff: []time.Duration{time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	failures := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, col.handler(func(person int) error {
			if person == 17 && failures < 5 {
				failures++
				return errors.New("the database is busy")
			}
			return nil
		}))
	}()
	waitFor(t, "message 30", func() bool { return slices.Contains(col.handled(), 30) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := col.handled()
	for i, n := range got {
		if n != 11+i {
			t.Fatalf("handled %v, want 11..30 once each, in order", got)
		}
	}
	if failures != 5 {
		t.Errorf("%d failures, want 5", failures)
	}
}
