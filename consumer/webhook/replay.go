package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/streamrange"
)

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Delivered, Failed int
}

// Replay re-sends the dead letters of one endpoint (or all, when endpoint is
// empty), once each, signed with the current secrets and with their
// original webhook-id; a delivered one is removed from the dead-letter
// stream, a failed one stays. An endpoint not configured is
// ErrUnknownEndpoint.
func (b *Bridge) Replay(ctx context.Context, endpoint string) (map[string]ReplayResult, error) {
	// An unknown endpoint is refused before anything else: with no
	// dead-letter stream yet, it would otherwise pass for one with
	// nothing to replay.
	if endpoint != "" && !slices.ContainsFunc(b.cfg.Endpoints, func(ep Endpoint) bool { return ep.Name == endpoint }) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEndpoint, endpoint)
	}
	out := map[string]ReplayResult{}
	s, err := b.o.JetStream.Stream(ctx, b.cfg.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		for _, ep := range b.cfg.Endpoints {
			if endpoint == "" || ep.Name == endpoint {
				out[ep.Name] = ReplayResult{} // no dead letter yet
			}
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	for i := range b.cfg.Endpoints {
		ep := &b.cfg.Endpoints[i]
		if endpoint != "" && ep.Name != endpoint {
			continue
		}
		t := &target{b: b, ep: ep, log: b.o.Logger.With("endpoint", ep.Name), client: b.client(ep)}
		var res ReplayResult
		_, err := streamrange.Read(ctx, b.o.JetStream, b.cfg.DeadLetterStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{b.DeadLetterSubject(ep.Name)},
		}, func(m jetstream.Msg) error {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			ev, err := event.Decode(m.Data())
			if err != nil {
				res.Failed++
				t.log.Error("dead letter is not an event; left in place", "seq", md.Sequence.Stream, "err", err)
				return nil
			}
			r := t.post(ctx, ev.ID, m.Data())
			if !r.ok() {
				res.Failed++
				t.log.Warn("replay failed; left in the dead-letter stream", "event", ev.ID, "last", r.String())
				return nil
			}
			res.Delivered++
			return s.DeleteMsg(ctx, md.Sequence.Stream)
		})
		if err != nil {
			return out, err
		}
		out[ep.Name] = res
		b.m.dlqDepth(ctx, b.o.JetStream, b.cfg.DeadLetterStream, ep.Name, b.DeadLetterSubject(ep.Name))
	}
	return out, nil
}
