package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// Message is one event with its place in the stream.
type Message struct {
	*event.Event
	// Seq is the message's stream sequence: store it with the effects of a
	// batch to apply each event exactly once.
	Seq     uint64
	Subject string
	// Delivered counts the handler calls this message has had, this one
	// included, across restarts (always 1 for a Reader).
	Delivered int
	Header    nats.Header
	// Body is the event exactly as stored in the stream.
	Body []byte
	msg  jetstream.Msg
}

// Handler processes a batch of messages in stream order. Returning nil
// settles the batch; an error has it retried.
type Handler func(ctx context.Context, batch []*Message) error

// ErrPermanent, wrapped in a handler's error, sends the failing message of a
// durable Consumer to the dead-letter subject at once instead of retrying it.
var ErrPermanent = errors.New("permanent failure")

// decode turns a fetched message into a Message.
func decode(m jetstream.Msg) (*Message, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	ev, err := event.Decode(m.Data())
	if err != nil {
		return nil, err
	}
	return &Message{Event: ev, Seq: md.Sequence.Stream, Subject: m.Subject(), Delivered: int(md.NumDelivered), Header: m.Headers(), Body: m.Data(), msg: m}, nil
}
