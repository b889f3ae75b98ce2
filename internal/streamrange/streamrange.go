package streamrange

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BatchSize is how many messages one fetch asks for.
const BatchSize = 1000

// Read calls fn for every message of stream that matches cfg and is in the
// stream when Read reaches it, in stream order, and returns how many it read.
// It stops at the first error from fn.
func Read(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg) error) (int, error) {
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", stream, err)
	}
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		batch, err := cons.FetchNoWait(BatchSize)
		if err != nil {
			return n, fmt.Errorf("read stream %s: %w", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			n++
			if err := fn(msg); err != nil {
				// Drain the batch so the consumer is left in order.
				for range batch.Messages() {
				}
				return n, err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return n, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if got == 0 {
			return n, nil
		}
	}
}
