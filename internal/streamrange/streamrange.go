package streamrange

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// BatchSize is how many messages one fetch asks for.
const BatchSize = 1000

// deleteTimeout bounds the deletion of a consumer Named is done with; it
// runs even when the read's context has ended.
const deleteTimeout = 5 * time.Second

// Read calls fn for every message of stream that matches cfg and is in the
// stream when Read reaches it, in stream order, and returns how many it read.
// It stops at the first error from fn.
//
// Its consumers are ephemeral and named by nats.go; the one in use when it
// returns is removed by the server once inactive (cfg.InactiveThreshold,
// 5 minutes by default). Read deletes none itself, so readers that may not
// delete consumers (the embedded server's subscriber role) can use it.
func Read(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg) error) (int, error) {
	return read(ctx, js, stream, cfg, false, fn)
}

// Named is Read for a reader that may delete consumers (the producer). Its
// consumers are named name, a unique suffix (two readers with one name do
// not share a consumer) and nats.go's serial, "<name>-<nuid>_<n>", so that
// `nats consumer ls` says whose they are; each is deleted as soon as it has
// been read, and none is left on the server when Named returns, whatever it
// returns. name must be a valid consumer name (no spaces, '.', '*' or '>').
func Named(ctx context.Context, js jetstream.JetStream, stream, name string, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg) error) (int, error) {
	cfg.NamePrefix = name + "-" + nuid.Next()
	return read(ctx, js, stream, cfg, true, fn)
}

func read(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, owned bool, fn func(jetstream.Msg) error) (int, error) {
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", stream, err)
	}
	// An ordered consumer replaces its server-side consumer on every fetch
	// and deletes the old one in the background; an owner deletes each
	// itself, before the next fetch and at the end, so that none outlives
	// the read.
	done := func() {}
	if owned {
		done = func() { deleteCurrent(ctx, js, stream, cons) }
		defer func() { done() }()
	}
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		done()
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

// deleteCurrent deletes the server-side consumer an ordered consumer uses
// now. A consumer already gone (deleted in the background, or inactive) is
// no error; nor is anything else: the server removes a consumer left
// behind once it is inactive.
func deleteCurrent(ctx context.Context, js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	_ = js.DeleteConsumer(dctx, stream, info.Name)
}
