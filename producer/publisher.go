package producer

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/event"
)

// kvWrite is a snapshot write that follows an event once the stream has
// acknowledged it: put the canonical row, or delete the key.
type kvWrite struct {
	idx    int32 // the entry in the snapshot index
	token  string
	value  []byte // nil for a delete
	hash   event.Hash
	delete bool
}

type inflight struct {
	fut   jetstream.PubAckFuture
	write *kvWrite // for an event: the write to make once acked
	isKV  bool     // this is itself a snapshot write
}

// publisher publishes events and snapshot writes asynchronously with a
// bounded number unacknowledged, and makes each snapshot write only after
// its event was acknowledged: the snapshot never runs ahead of the stream.
// It is used by one goroutine at a time.
type publisher struct {
	js       jetstream.JetStream
	kvPrefix string // "$KV.<bucket>."
	max      int
	queue    []inflight
	err      error
	// lastSeq is the highest stream sequence acknowledged for an event.
	lastSeq uint64
	// written is called when a snapshot write is acknowledged, with its
	// revision.
	written func(w *kvWrite, rev uint64)
	// duplicates counts events the stream already held (same Nats-Msg-Id).
	duplicates int
}

func newPublisher(js jetstream.JetStream, bucket string, max int, written func(*kvWrite, uint64)) *publisher {
	return &publisher{js: js, kvPrefix: "$KV." + bucket + ".", max: max, written: written}
}

// Err returns the first failure; once set, the pass must be abandoned and
// the report recovered from the stream.
func (p *publisher) Err() error { return p.err }

// event publishes one event; w, when not nil, is written to the snapshot
// once the stream acknowledges the event.
func (p *publisher) event(ctx context.Context, subject, id string, data []byte, w *kvWrite) error {
	if p.err != nil {
		return p.err
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Header.Set("Content-Type", event.ContentType)
	msg.Data = data
	return p.send(ctx, msg, inflight{write: w})
}

func (p *publisher) send(ctx context.Context, msg *nats.Msg, f inflight) error {
	for len(p.queue) >= p.max {
		if err := p.reapOne(ctx); err != nil {
			return err
		}
	}
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		p.err = fmt.Errorf("publish %s: %w", msg.Subject, err)
		return p.err
	}
	f.fut = fut
	p.queue = append(p.queue, f)
	return nil
}

func (p *publisher) sendKV(ctx context.Context, w *kvWrite) error {
	msg := nats.NewMsg(p.kvPrefix + w.token)
	if w.delete {
		msg.Header.Set("KV-Operation", "DEL")
	} else {
		msg.Header.Set(event.HashHeader, hex.EncodeToString(w.hash[:]))
		msg.Data = w.value
	}
	return p.send(ctx, msg, inflight{isKV: true, write: w})
}

// reapOne waits for the oldest publish to be acknowledged and acts on it.
func (p *publisher) reapOne(ctx context.Context) error {
	f := p.queue[0]
	p.queue = p.queue[1:]
	select {
	case ack := <-f.fut.Ok():
		if f.isKV {
			p.written(f.write, ack.Sequence)
			return nil
		}
		p.lastSeq = max(p.lastSeq, ack.Sequence)
		if ack.Duplicate {
			p.duplicates++
		}
		if f.write != nil && p.err == nil {
			return p.sendKV(ctx, f.write)
		}
		return nil
	case err := <-f.fut.Err():
		if p.err == nil {
			p.err = fmt.Errorf("publish %s: %w", f.fut.Msg().Subject, err)
		}
		return p.err
	case <-ctx.Done():
		if p.err == nil {
			p.err = fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
		}
		return p.err
	}
}

// flush waits until everything published so far, and the snapshot writes
// that follow, are acknowledged. After a failure it still waits for every
// outstanding publish to resolve, so nothing is in flight when the caller
// reads the stream to recover, and returns the failure.
func (p *publisher) flush(ctx context.Context) error {
	for len(p.queue) > 0 {
		if err := p.reapOne(ctx); err != nil {
			break
		}
	}
	if p.err != nil {
		for _, f := range p.queue {
			select {
			case <-f.fut.Ok():
			case <-f.fut.Err():
			case <-ctx.Done():
			}
		}
		p.queue = nil
	}
	return p.err
}
