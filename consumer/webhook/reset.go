package webhook

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/natsconn"
)

// EnableCommand is the command that enables a disabled endpoint again, as
// logs and status name it.
func EnableCommand(endpoint string) string {
	return "cometstream sink webhook enable --nats URL --config FILE --endpoint " + endpoint
}

// Enable removes an endpoint's Disablement from the bucket, so that it
// delivers its waiting events again: a running bridge notices within
// seconds, a stopped one at its next start. It returns the record removed,
// nil when the endpoint was not disabled, and ErrUnknownEndpoint for an
// endpoint not configured.
func (b *Bridge) Enable(ctx context.Context, endpoint string) (*Disablement, error) {
	if b.byName[endpoint] == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEndpoint, endpoint)
	}
	return enable(ctx, b.o.JetStream, b.o.Prefix, endpoint)
}

// ResetResult says what Reset did.
type ResetResult struct {
	// Consumer is the endpoint's consumer name; Deleted says whether it
	// existed and was deleted.
	Consumer string
	Deleted  bool
	// Enabled is the disablement removed, nil when there was none.
	Enabled *Disablement
}

// Reset starts an endpoint's deliveries over: it deletes the endpoint's
// consumer, so that the next start begins where the endpoint's Start (or
// Options.FromStart) says, and removes its disablement. What the consumer
// held is dropped: events waiting for a retry are not sent again (they are
// still in the stream; StartAll sends the history).
//
// It returns an error wrapping ErrEndpointBusy when a bridge is consuming
// the consumer now, as its waiting pull requests show. A bridge whose
// workers are all busy with deliveries has none for a moment and is not
// seen: stop the bridge before a reset. ErrUnknownEndpoint for an endpoint
// not configured.
func (b *Bridge) Reset(ctx context.Context, endpoint string) (ResetResult, error) {
	st := b.byName[endpoint]
	if st == nil {
		return ResetResult{}, fmt.Errorf("%w: %q", ErrUnknownEndpoint, endpoint)
	}
	res := ResetResult{Consumer: st.durable}
	c, err := b.o.JetStream.Consumer(ctx, b.o.Stream, st.durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return res, fmt.Errorf("consumer %s: %w", st.durable, err)
	default:
		info := c.CachedInfo()
		if info.NumWaiting > 0 || info.PushBound {
			return res, fmt.Errorf("%w: consumer %s of %s has %d waiting pull requests: a bridge is delivering it; stop the bridge, then reset",
				ErrEndpointBusy, st.durable, b.o.Stream, info.NumWaiting)
		}
		if err := b.o.JetStream.DeleteConsumer(ctx, b.o.Stream, st.durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return res, fmt.Errorf("delete consumer %s: %w", st.durable, natsconn.DeleteRefused(err))
		}
		res.Deleted = true
	}
	res.Enabled, err = enable(ctx, b.o.JetStream, b.o.Prefix, endpoint)
	return res, err
}
