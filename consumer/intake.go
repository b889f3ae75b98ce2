package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// intake fetches messages from a JetStream consumer and turns them into
// units for a handler loop: a decoder goroutine batches and decodes what
// was fetched while the handler applies the previous batch. It owns its
// goroutines: stop ends them and waits.
type intake struct {
	units chan unit
	// in holds fetched messages; the fetch callback never blocks past stop.
	in    chan jetstream.Msg
	cc    jetstream.ConsumeContext
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	ended ending
	// closed is cc.Closed(), taken once.
	closed <-chan struct{}
}

// unit is what the decoder hands to the handler loop, in stream order: a
// batch of decoded messages, or one that cannot be decoded.
type unit struct {
	batch  []*Message
	bad    jetstream.Msg
	badErr error
}

// startIntake starts consuming. With keepBad, an undecodable message is
// handed on as a unit of its own (for a dead letter); otherwise it is
// logged and skipped.
func startIntake(cons jetstream.Consumer, batchSize int, keepBad bool, log *slog.Logger) (*intake, error) {
	in := &intake{
		units: make(chan unit, 2),
		in:    make(chan jetstream.Msg, 2*batchSize),
		done:  make(chan struct{}),
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in.in <- m:
		case <-in.done:
			// Stopping: the message is handed back (or, for an ordered
			// consumer, simply not taken).
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(2*batchSize), jetstream.ConsumeErrHandler(in.ended.note(log)))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	in.cc = cc
	// Once: an ordered consumer's Closed starts a goroutine per call.
	in.closed = cc.Closed()
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.decodeLoop(batchSize, keepBad, log)
	}()
	return in, nil
}

// decodeLoop collects fetched messages into batches (as many as are at hand,
// up to batchSize) and decodes them.
func (in *intake) decodeLoop(batchSize int, keepBad bool, log *slog.Logger) {
	send := func(u unit) bool {
		select {
		case in.units <- u:
			return true
		case <-in.done:
			return false
		}
	}
	for {
		var first jetstream.Msg
		select {
		case <-in.done:
			return
		case first = <-in.in:
		}
		raw := []jetstream.Msg{first}
	fill:
		for len(raw) < batchSize {
			select {
			case m := <-in.in:
				raw = append(raw, m)
			default:
				break fill
			}
		}
		batch := make([]*Message, 0, len(raw))
		for _, m := range raw {
			msg, err := decode(m)
			if err == nil {
				batch = append(batch, msg)
				continue
			}
			if !keepBad {
				log.Warn("skipping an undecodable message", "subject", m.Subject(), "err", err)
				continue
			}
			// Everything before it first, then the bad one, in order.
			if len(batch) > 0 && !send(unit{batch: batch}) {
				return
			}
			batch = nil
			if !send(unit{bad: m, badErr: err}) {
				return
			}
		}
		if len(batch) > 0 && !send(unit{batch: batch}) {
			return
		}
	}
}

// next returns the next unit, or false once ctx ended or, with an error,
// once the server ended the consumption.
func (in *intake) next(ctx context.Context) (unit, bool, error) {
	select {
	case u := <-in.units:
		return u, true, nil
	case <-ctx.Done():
		return unit{}, false, nil
	case <-in.closed:
		if ctx.Err() != nil {
			return unit{}, false, nil // shutting down: the connection closed after ctx
		}
		return unit{}, false, in.ended.err()
	}
}

// ending keeps the error that ended a consumption, for ErrConsumerGone.
type ending struct {
	mu    sync.Mutex
	cause error
}

// note returns the consume error handler: it logs each error but missed
// heartbeats and keeps the last one.
func (e *ending) note(log *slog.Logger) jetstream.ConsumeErrHandler {
	return func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			return
		}
		log.Warn("consume", "err", err)
		e.mu.Lock()
		e.cause = err
		e.mu.Unlock()
	}
}

// err is ErrConsumerGone, with the server's reason when one came.
func (e *ending) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cause == nil {
		return ErrConsumerGone
	}
	return fmt.Errorf("%w: %w", ErrConsumerGone, e.cause)
}

// stop ends fetching and decoding and waits for both, then hands back
// what was fetched but not handled (so a durable consumer's successor gets
// it at once rather than after AckWait).
func (in *intake) stop() {
	in.once.Do(func() {
		close(in.done)
		in.cc.Stop()
		in.wg.Wait()
		for {
			select {
			case u := <-in.units:
				for _, m := range u.batch {
					_ = m.msg.Nak()
				}
				if u.bad != nil {
					_ = u.bad.Nak()
				}
			case m := <-in.in:
				_ = m.Nak()
			default:
				return
			}
		}
	})
}
