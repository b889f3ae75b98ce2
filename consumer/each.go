package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunEach consumes and hands each message to one of workers goroutines,
// for handlers that settle messages one by one and out of order (the
// webhook bridge): h must call exactly one of Message.Ack, Message.Retry or
// Consumer.DeadLetter. Undecodable messages are dead-lettered. A message h
// has not settled when the consumer stops is redelivered. It returns nil
// when ctx ends, after every worker returned, and ErrConsumerGone when the
// server ends the consumption.
func (c *Consumer) RunEach(ctx context.Context, workers int, h func(context.Context, *Message)) error {
	cons, err := c.open(ctx)
	if ctx.Err() != nil {
		return nil // asked to stop while starting
	}
	if err != nil {
		return err
	}
	work := make(chan jetstream.Msg)
	done := make(chan struct{})
	var ended ending
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case work <- m:
		case <-done:
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(max(workers, 1)), jetstream.ConsumeErrHandler(ended.note(c.log)))
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Stream, err)
	}
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var m jetstream.Msg
				select {
				case <-ctx.Done():
					return
				case <-done:
					return
				case m = <-work:
				}
				msg, err := decode(m)
				if err != nil {
					if err := c.deadLetter(ctx, m, 1, err); err != nil {
						c.log.Error("dead-letter", "err", err)
						_ = m.Nak()
					}
					continue
				}
				h(context.WithoutCancel(ctx), msg)
			}
		}()
	}
	var gone error
	select {
	case <-ctx.Done():
	case <-cc.Closed():
		if ctx.Err() != nil {
			break // shutting down: the connection closed after ctx
		}
		gone = c.named(ended.err())
	}
	close(done)
	cc.Stop()
	wg.Wait()
	return gone
}

// Ack settles a message handled by RunEach.
func (m *Message) Ack() error { return m.msg.Ack() }

// Retry has the server deliver a RunEach message again after delay; the
// message's Delivered count grows with each delivery, across restarts.
func (m *Message) Retry(delay time.Duration) error { return m.msg.NakWithDelay(delay) }

// InProgress tells the server the message is still being worked on.
func (m *Message) InProgress() error { return m.msg.InProgress() }

// DeadLetter publishes a message to subject in the dead-letter stream with
// the reason and extra headers, and acknowledges it.
func (c *Consumer) DeadLetter(ctx context.Context, subject string, m *Message, reason error, extra nats.Header) error {
	return c.deadLetterTo(ctx, subject, m.msg, m.Delivered, reason, extra)
}
