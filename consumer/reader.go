package consumer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/retry"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's stream and subject prefix
	// (defaults event.DefaultStream and event.DefaultPrefix).
	Stream, Prefix string
	// Filter selects the events; the zero Filter selects all.
	Filter Filter
	// StartSeq is the stream sequence to read from: the one after the last
	// the caller handled. 0 reads from the beginning, unless DeliverNew.
	StartSeq uint64
	// DeliverNew starts at events published from now on.
	DeliverNew bool
	// Name prefixes the name of the ordered consumer on the server (a
	// suffix unique to each Run follows), so an operator can tell readers
	// apart; default "cometstream".
	Name string
	// BatchSize bounds a batch; default 256.
	BatchSize int
	// Backoff is the wait before each retry of a failed handler (the last
	// repeats), jittered; default 1s, 5s, 30s.
	Backoff []time.Duration
	Logger  *slog.Logger
}

// Reader follows the stream from a position its caller keeps, through an
// ordered consumer: every selected event in stream order, with no gaps and
// nothing redelivered, and no state on the server (nothing is
// acknowledged). A failing handler is retried with backoff until it
// succeeds: a Reader never skips an event. This is what the materializing
// sinks and tail use; a handler that stores Message.Seq with its effects and
// restarts from there applies each event exactly once.
type Reader struct {
	cfg      ReaderConfig
	log      *slog.Logger
	subjects []string
}

// NewReader checks the configuration and fills its defaults. It returns
// ErrNoJetStream or an error wrapping ErrFilter.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.JetStream == nil {
		return nil, ErrNoJetStream
	}
	cfg.Stream = cmp.Or(cfg.Stream, event.DefaultStream)
	cfg.Prefix = cmp.Or(cfg.Prefix, event.DefaultPrefix)
	cfg.Name = cmp.Or(cfg.Name, "cometstream")
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = defaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	subjects, err := cfg.Filter.Subjects(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFilter, err)
	}
	return &Reader{cfg: cfg, log: cfg.Logger, subjects: subjects}, nil
}

// Run reads until ctx ends and returns nil; a batch in hand is finished
// first (its handler sees a context that is not cancelled). A stream that
// does not exist yet is waited for (said once in the log). It returns an
// error only when the stream cannot be read at all.
func (r *Reader) Run(ctx context.Context, h Handler) error {
	if err := waitForStream(ctx, r.cfg.JetStream, r.cfg.Stream, r.log); err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while waiting
		}
		return err
	}
	// Unique per run: two readers with one name, or one restarted with
	// another start, must not meet on the server.
	oc := jetstream.OrderedConsumerConfig{FilterSubjects: r.subjects, DeliverPolicy: jetstream.DeliverAllPolicy, NamePrefix: r.cfg.Name + "_" + nuid.Next()[12:]}
	switch {
	case r.cfg.StartSeq > 0:
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.cfg.StartSeq
	case r.cfg.DeliverNew:
		oc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := r.cfg.JetStream.OrderedConsumer(ctx, r.cfg.Stream, oc)
	if ctx.Err() != nil {
		return nil // asked to stop while starting
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", r.cfg.Stream, err)
	}
	in, err := startIntake(cons, r.cfg.BatchSize, false, r.log)
	if err != nil {
		return fmt.Errorf("%s: %w", r.cfg.Stream, err)
	}
	defer in.stop()
	hctx := context.WithoutCancel(ctx)
	for {
		u, ok, err := in.next(ctx)
		if !ok {
			if err != nil {
				return fmt.Errorf("read %s: %w", r.cfg.Stream, err)
			}
			return nil
		}
		for attempt := 1; ; attempt++ {
			err := h(hctx, u.batch)
			if err == nil {
				break
			}
			wait := retry.Jitter(r.cfg.Backoff[min(attempt, len(r.cfg.Backoff))-1], 0.5)
			r.log.Warn("handler failed; retrying the batch", "first_seq", u.batch[0].Seq, "messages", len(u.batch), "retry_in", wait, "err", err)
			if !sleep(ctx, wait) {
				return nil
			}
		}
	}
}
