package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/retry"
)

// Config configures a durable Consumer.
type Config struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's stream and subject prefix
	// (defaults event.DefaultStream and event.DefaultPrefix).
	Stream, Prefix string
	// Durable names the JetStream consumer, so that a restart resumes after
	// the last acknowledged message; required.
	Durable string
	// Filter selects the events; the zero Filter selects all.
	Filter Filter
	// StartSeq, when set, is the stream sequence to start from: a consumer
	// whose acknowledgements are past it is recreated there.
	StartSeq uint64
	// BatchSize bounds a batch; default 256.
	BatchSize int
	// MaxDeliver is how many times a message is handed to the handler before
	// it goes to the dead-letter subject; default 5.
	MaxDeliver int
	// Backoff is the wait before each retry of a failed handler (the last
	// repeats), jittered; default 1s, 5s, 30s.
	Backoff []time.Duration
	// AckWait is how long the server waits for an acknowledgement before it
	// redelivers; the consumer keeps messages in hand alive. Default 1m.
	AckWait time.Duration
	// MaxAckPending bounds the messages handed out and not yet settled;
	// default 4 × BatchSize.
	MaxAckPending int
	// DeadLetterStream holds dead letters, under DeadLetterSubject; default
	// "<stream>_DLQ". It is created when the first message goes there.
	DeadLetterStream string
	// InUseWait bounds how long Run and RunEach wait, when the durable
	// consumer exists with other settings (filter, AckWait,
	// MaxAckPending), for the process reading it to stop before they
	// change them; still read then, they return ErrConsumerInUse instead
	// of changing another process's consumer under it. A stopped or
	// crashed reader's pull requests expire within 30s. Default 35s.
	InUseWait time.Duration
	Logger    *slog.Logger
}

// defaultBackoff is the retry schedule of a Consumer or a Reader whose
// configuration sets none.
var defaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// Errors of New and NewReader.
var (
	// ErrNoJetStream: the configuration names no JetStream context.
	ErrNoJetStream = errors.New("consumer: no JetStream")
	// ErrNoDurable: a durable Consumer needs a name.
	ErrNoDurable = errors.New("consumer: a durable consumer needs a name (Config.Durable)")
	// ErrFilter: the filter names a report, operation or kind that cannot
	// occur.
	ErrFilter = errors.New("consumer: invalid filter")
)

// ErrConsumerInUse is returned by Run and RunEach when the durable
// consumer exists with other settings and another process goes on reading
// it: two processes sharing a durable name must agree on its filter.
var ErrConsumerInUse = errors.New("consumer: the durable consumer is read by another process with other settings")

// defaultInUseWait outlasts the 30s expiry of a stopped reader's pull
// requests.
const defaultInUseWait = 35 * time.Second

// ErrConsumerGone is returned by Run, RunEach and Reader.Run when the
// server ends the consumption while it runs: the durable consumer was
// deleted (`nats consumer rm`) or the connection closed for good. Nothing
// more would ever arrive; what was fetched and not handled is handed back.
var ErrConsumerGone = errors.New("consumer: the consumption ended: consumer deleted or connection closed")

// Dead-letter message headers.
const (
	HeaderDLQReason    = "Cometstream-Dlq-Reason"
	HeaderDLQSeq       = "Cometstream-Dlq-Stream-Seq"
	HeaderDLQSubject   = "Cometstream-Dlq-Subject"
	HeaderDLQDelivered = "Cometstream-Dlq-Delivered"
)

// DefaultDeadLetterStream is the dead-letter stream of a producer stream.
func DefaultDeadLetterStream(stream string) string { return stream + "_DLQ" }

// DeadLetterSubject is where the dead letters of a durable consumer go.
func DeadLetterSubject(prefix, durable string) string { return prefix + "_dlq." + durable }

// Consumer reads events through a durable JetStream consumer: the server
// keeps its position, messages are acknowledged one by one after the
// handler returned nil, a failing handler is retried with backoff, and a
// message that keeps failing is published to a dead-letter subject with the
// reason. Messages the server handed to a consumer that stopped are
// redelivered after AckWait, so a redelivery can arrive after newer
// messages; a handler that must apply each event once in order keeps
// Message.Seq with its effects, or uses a Reader.
type Consumer struct {
	cfg      Config
	js       jetstream.JetStream
	log      *slog.Logger
	subjects []string
	dlqMu    sync.Mutex
	dlqReady bool
}

// New checks the configuration and fills its defaults. It returns
// ErrNoJetStream, ErrNoDurable or an error wrapping ErrFilter.
func New(cfg Config) (*Consumer, error) {
	if cfg.JetStream == nil {
		return nil, ErrNoJetStream
	}
	if cfg.Durable == "" {
		return nil, ErrNoDurable
	}
	cfg.Stream = cmp.Or(cfg.Stream, event.DefaultStream)
	cfg.Prefix = cmp.Or(cfg.Prefix, event.DefaultPrefix)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 5
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = defaultBackoff
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = time.Minute
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 4 * cfg.BatchSize
	}
	if cfg.InUseWait <= 0 {
		cfg.InUseWait = defaultInUseWait
	}
	cfg.DeadLetterStream = cmp.Or(cfg.DeadLetterStream, DefaultDeadLetterStream(cfg.Stream))
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	subjects, err := cfg.Filter.Subjects(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFilter, err)
	}
	return &Consumer{cfg: cfg, js: cfg.JetStream, log: cfg.Logger.With("consumer", cfg.Durable), subjects: subjects}, nil
}

// DeadLetterSubject is where this consumer's dead letters go.
func (c *Consumer) DeadLetterSubject() string { return DeadLetterSubject(c.cfg.Prefix, c.cfg.Durable) }

// errShutdown stops a retry loop when the consumer is asked to stop.
var errShutdown = errors.New("shutting down")

// Run consumes until ctx ends, then finishes the batch in hand, hands back
// what was fetched and not handled, and returns nil. It returns an error
// when the consumer cannot be created or a dead letter cannot be published,
// and ErrConsumerGone when the server ends the consumption.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	cons, err := c.open(ctx)
	if ctx.Err() != nil {
		return nil // asked to stop while starting
	}
	if err != nil {
		return err
	}
	in, err := startIntake(cons, c.cfg.BatchSize, true, c.log)
	if err != nil {
		return fmt.Errorf("%s: %w", c.cfg.Stream, err)
	}
	defer in.stop()
	for {
		u, ok, err := in.next(ctx)
		if !ok {
			return c.named(err)
		}
		if u.bad != nil {
			err = c.deadLetter(ctx, u.bad, 1, u.badErr)
		} else {
			err = c.retry(ctx, h, u.batch)
		}
		if errors.Is(err, errShutdown) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// open creates the durable consumer, or updates one whose settings differ
// (keeping its position).
func (c *Consumer) open(ctx context.Context) (jetstream.Consumer, error) {
	want := jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    "cometstream consumer",
		FilterSubjects: c.subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxAckPending:  c.cfg.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if c.cfg.StartSeq > 0 {
		want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, c.cfg.StartSeq
	}
	if len(c.subjects) == 1 {
		want.FilterSubject, want.FilterSubjects = c.subjects[0], nil
	}
	existing, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return nil, fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
	default:
		info := existing.CachedInfo()
		ahead := c.cfg.StartSeq > 0 && info.AckFloor.Stream+1 > c.cfg.StartSeq
		same := info.Config.FilterSubject == want.FilterSubject && slices.Equal(info.Config.FilterSubjects, want.FilterSubjects) &&
			info.Config.AckPolicy == want.AckPolicy && info.Config.MaxAckPending == want.MaxAckPending && info.Config.AckWait == want.AckWait
		if !ahead && same {
			return existing, nil
		}
		if ahead {
			c.log.Info("consumer is ahead of the requested start; starting it over there", "acked", info.AckFloor.Stream, "start", c.cfg.StartSeq)
		} else {
			// Keep the position under the new settings.
			want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(c.cfg.StartSeq, info.AckFloor.Stream+1)
		}
		if err := c.waitUnread(ctx, existing); err != nil {
			return nil, err
		}
		if err := c.js.DeleteConsumer(ctx, c.cfg.Stream, c.cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("replace consumer %s: %w", c.cfg.Durable, natsconn.DeleteRefused(err))
		}
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, want)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.cfg.Durable, err)
	}
	return cons, nil
}

// named says which consumer an error that ended the consumption is of;
// nil stays nil.
func (c *Consumer) named(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("consumer %s of %s: %w", c.cfg.Durable, c.cfg.Stream, err)
}

// waitUnread waits, up to InUseWait, until no process reads the consumer
// (no pull request waits on it), before its settings are changed.
func (c *Consumer) waitUnread(ctx context.Context, cons jetstream.Consumer) error {
	info := cons.CachedInfo() // just read by open
	if info.NumWaiting == 0 {
		return nil
	}
	filter := strings.TrimSpace(info.Config.FilterSubject + " " + strings.Join(info.Config.FilterSubjects, " "))
	c.log.Warn("the consumer is read with other settings: waiting for its reader to stop before changing them",
		"consumer", c.cfg.Durable, "filter", filter, "waiting_requests", info.NumWaiting, "up_to", c.cfg.InUseWait)
	deadline := time.Now().Add(c.cfg.InUseWait)
	for info.NumWaiting > 0 {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: consumer %s of %s is still read (%d pull requests waiting) with filter %s after %s; give this one its own durable name, or stop the other",
				ErrConsumerInUse, c.cfg.Durable, c.cfg.Stream, info.NumWaiting, filter, c.cfg.InUseWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		var err error
		if info, err = cons.Info(ctx); errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil // deleted meanwhile
		} else if err != nil {
			return fmt.Errorf("consumer %s: %w", c.cfg.Durable, err)
		}
	}
	return nil
}

// retry calls h with the batch until it succeeds, then acknowledges it; a
// failing batch is split, and a message that keeps failing is
// dead-lettered.
func (c *Consumer) retry(ctx context.Context, h Handler, batch []*Message) error {
	if len(batch) == 0 {
		return nil
	}
	// Handlers finish their batch even when shutdown is asked for.
	hctx := context.WithoutCancel(ctx)
	stop := c.keepAlive(batch)
	defer stop()
	for attempt := 1; ; attempt++ {
		err := h(hctx, batch)
		if err == nil {
			return c.ack(batch)
		}
		if len(batch) > 1 {
			c.log.Warn("batch failed; handling its messages one by one", "messages", len(batch), "err", err)
			for i, m := range batch {
				if err := c.retry(ctx, h, []*Message{m}); err != nil {
					for _, rest := range batch[i+1:] {
						_ = rest.msg.Nak()
					}
					return err
				}
			}
			return nil
		}
		m := batch[0]
		if errors.Is(err, ErrPermanent) || m.Delivered >= c.cfg.MaxDeliver {
			return c.deadLetter(ctx, m.msg, m.Delivered, err)
		}
		wait := retry.Jitter(c.cfg.Backoff[min(attempt, len(c.cfg.Backoff))-1], 0.5)
		c.log.Warn("handler failed; retrying", "seq", m.Seq, "subject", m.Subject, "delivered", m.Delivered, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			_ = m.msg.Nak()
			return errShutdown
		}
		m.Delivered++
	}
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepAlive tells the server the batch is still being worked on until stop
// is called, so AckWait does not redeliver it behind the handler's back.
// stop waits for the goroutine.
func (c *Consumer) keepAlive(batch []*Message) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range batch {
					_ = m.msg.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (c *Consumer) ack(batch []*Message) error {
	// Each message on its own: acknowledging the last for all would also
	// settle one redelivered out of order and never handled.
	for _, m := range batch {
		if err := m.msg.Ack(); err != nil {
			return fmt.Errorf("acknowledge seq %d: %w", m.Seq, err)
		}
	}
	return nil
}

// deadLetter publishes a message that cannot be handled, with the reason,
// and acknowledges it. The dead letter's message id makes a repeat after a
// crash harmless.
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, delivered int, reason error) error {
	return c.deadLetterTo(ctx, c.DeadLetterSubject(), m, delivered, reason, nil)
}

func (c *Consumer) deadLetterTo(ctx context.Context, subject string, m jetstream.Msg, delivered int, reason error, extra nats.Header) error {
	if err := c.ensureDLQ(ctx); err != nil {
		return err
	}
	md, _ := m.Metadata()
	seq := uint64(0)
	if md != nil {
		seq = md.Sequence.Stream
	}
	dl := nats.NewMsg(subject)
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		dl.Header[k] = v
	}
	dl.Header.Set(jetstream.MsgIDHeader, "dlq-"+subject+"-"+strconv.FormatUint(seq, 10))
	dl.Header.Set(HeaderDLQReason, reason.Error())
	dl.Header.Set(HeaderDLQSeq, strconv.FormatUint(seq, 10))
	dl.Header.Set(HeaderDLQSubject, m.Subject())
	dl.Header.Set(HeaderDLQDelivered, strconv.Itoa(delivered))
	for k, v := range extra {
		dl.Header[k] = v
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := c.js.PublishMsg(pctx, dl); err != nil {
		return fmt.Errorf("dead-letter seq %d: %w", seq, err)
	}
	c.log.Error("message dead-lettered", "seq", seq, "subject", m.Subject(), "delivered", delivered, "dead_letter_subject", dl.Subject, "reason", reason)
	if err := m.Ack(); err != nil {
		return fmt.Errorf("acknowledge dead letter seq %d: %w", seq, err)
	}
	return nil
}

func (c *Consumer) ensureDLQ(ctx context.Context) error {
	c.dlqMu.Lock()
	defer c.dlqMu.Unlock()
	if c.dlqReady {
		return nil
	}
	_, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.cfg.DeadLetterStream, Subjects: []string{c.cfg.Prefix + "_dlq.>"},
		Storage: jetstream.FileStorage, Description: "cometstream dead letters",
	})
	if err != nil {
		// It may exist with settings an operator chose; publishing will tell.
		if _, lerr := c.js.Stream(ctx, c.cfg.DeadLetterStream); lerr != nil {
			return fmt.Errorf("dead-letter stream %s: %w", c.cfg.DeadLetterStream, err)
		}
	}
	c.dlqReady = true
	return nil
}
