package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Consumer.
type Config struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's stream and subject prefix
	// (defaults COMET and comet).
	Stream, Prefix string
	// Durable names the JetStream consumer, so that a restart resumes where
	// it left off. Empty makes an ephemeral ordered consumer: in stream
	// order with no gaps, nothing acknowledged, no dead letters; the caller
	// keeps its own position and passes it as StartSeq (the sinks do).
	Durable string
	// NamePrefix names an ephemeral ordered consumer on the server.
	NamePrefix string
	// RetryForever makes an ephemeral consumer retry a failing handler with
	// backoff until it succeeds (a sink must not skip an event) instead of
	// returning the error (tail).
	RetryForever bool
	// Reports and Ops filter the events; empty means all. Ops are created,
	// updated, deleted, synced, schema, unavailable and held.
	Reports, Ops []string
	// StartSeq, when set, is the stream sequence to resume from: a durable
	// consumer whose position is past it is recreated there.
	StartSeq uint64
	// DeliverNew starts an ephemeral consumer at new events only.
	DeliverNew bool
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
	// DeadLetterStream holds dead letters, under subject
	// "<prefix>_dlq.<durable>"; default "<stream>_DLQ". It is created when
	// the first message goes there.
	DeadLetterStream string
	Logger           *slog.Logger
}

// Message is one event with its place in the stream.
type Message struct {
	*Event
	// Seq is the message's stream sequence: store it with the effects of a
	// batch to apply each event exactly once.
	Seq     uint64
	Subject string
	// Delivered counts the handler calls this message has had, this one
	// included, across restarts.
	Delivered int
	Header    nats.Header
	// Body is the event exactly as stored in the stream.
	Body []byte
	msg  jetstream.Msg
}

// Handler processes a batch of messages in stream order. Returning nil
// acknowledges the batch; an error has it retried.
type Handler func(ctx context.Context, batch []*Message) error

// ErrPermanent, wrapped in a handler's error, sends the failing message to
// the dead-letter subject at once instead of retrying it.
var ErrPermanent = errors.New("permanent failure")

// errShutdown stops a retry loop when the consumer is asked to stop.
var errShutdown = errors.New("shutting down")

// Dead-letter message headers.
const (
	HeaderDLQReason    = "Cometstream-Dlq-Reason"
	HeaderDLQSeq       = "Cometstream-Dlq-Stream-Seq"
	HeaderDLQSubject   = "Cometstream-Dlq-Subject"
	HeaderDLQDelivered = "Cometstream-Dlq-Delivered"
)

// Consumer reads events and hands them to a Handler.
type Consumer struct {
	cfg      Config
	js       jetstream.JetStream
	log      *slog.Logger
	subjects []string
	dlqMu    sync.Mutex
	dlqReady bool
}

// New checks the configuration.
func New(cfg Config) (*Consumer, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("consumer: no JetStream")
	}
	if cfg.Stream == "" {
		cfg.Stream = "COMET"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "comet"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 5
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = time.Minute
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 4 * cfg.BatchSize
	}
	if cfg.DeadLetterStream == "" {
		cfg.DeadLetterStream = cfg.Stream + "_DLQ"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	subjects, err := filterSubjects(cfg.Prefix, cfg.Reports, cfg.Ops)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &Consumer{cfg: cfg, js: cfg.JetStream, log: cfg.Logger.With("consumer", cfg.Durable), subjects: subjects}, nil
}

// DeadLetterSubject is where this consumer's dead letters go.
func (c *Consumer) DeadLetterSubject() string { return c.cfg.Prefix + "_dlq." + c.cfg.Durable }

// Run consumes until ctx ends or the handler fails for good (ephemeral
// consumers), then finishes the batch in hand and returns. It returns nil
// when ctx ended.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	cons, err := c.consumer(ctx)
	if err != nil {
		return err
	}
	in := make(chan jetstream.Msg, 2*c.cfg.BatchSize)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*c.cfg.BatchSize), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			c.log.Warn("consume", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Stream, err)
	}
	// A decoder goroutine turns fetched messages into batches while the
	// handler applies the previous batch: decoding and handling overlap.
	units := make(chan unit, 2)
	dctx, stopDecoding := context.WithCancel(ctx)
	decoded := make(chan struct{})
	go func() {
		defer close(decoded)
		c.decodeLoop(dctx, in, units)
	}()
	defer func() {
		stopDecoding()
		<-decoded
		cc.Stop()
		// Hand back what was fetched but not handled, so a successor gets
		// it at once rather than after AckWait.
		if c.cfg.Durable == "" {
			return
		}
		for {
			select {
			case u := <-units:
				for _, m := range u.batch {
					_ = m.msg.Nak()
				}
				if u.bad != nil {
					_ = u.bad.Nak()
				}
			case m := <-in:
				_ = m.Nak()
			default:
				return
			}
		}
	}()
	for {
		var u unit
		select {
		case <-ctx.Done():
			return nil
		case u = <-units:
		}
		var err error
		if u.bad != nil {
			err = c.deadLetter(ctx, u.bad, 1, u.badErr)
		} else {
			err = c.retry(ctx, h, u.batch)
		}
		if err != nil {
			if errors.Is(err, errShutdown) {
				return nil
			}
			return err
		}
	}
}

// unit is what the decoder hands to the handler loop, in stream order: a
// batch of decoded messages, or one that cannot be decoded.
type unit struct {
	batch  []*Message
	bad    jetstream.Msg
	badErr error
}

// decodeLoop collects fetched messages into batches (as many as are at hand,
// up to BatchSize) and decodes them.
func (c *Consumer) decodeLoop(ctx context.Context, in <-chan jetstream.Msg, out chan<- unit) {
	send := func(u unit) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		var first jetstream.Msg
		select {
		case <-ctx.Done():
			return
		case first = <-in:
		}
		raw := []jetstream.Msg{first}
	fill:
		for len(raw) < c.cfg.BatchSize {
			select {
			case m := <-in:
				raw = append(raw, m)
			default:
				break fill
			}
		}
		batch := make([]*Message, 0, len(raw))
		for _, m := range raw {
			msg, err := c.decode(m)
			if err == nil {
				batch = append(batch, msg)
				continue
			}
			if c.cfg.Durable == "" {
				c.log.Warn("skipping an undecodable message", "subject", m.Subject(), "err", err)
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

// consumer creates or updates the JetStream consumer.
func (c *Consumer) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return c.open(ctx, jetstream.AckExplicitPolicy)
}

// open creates or updates the JetStream consumer with the given ack policy.
func (c *Consumer) open(ctx context.Context, ack jetstream.AckPolicy) (jetstream.Consumer, error) {
	if c.cfg.Durable == "" {
		oc := jetstream.OrderedConsumerConfig{FilterSubjects: c.subjects, DeliverPolicy: jetstream.DeliverAllPolicy, NamePrefix: c.cfg.NamePrefix}
		switch {
		case c.cfg.StartSeq > 0:
			oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, c.cfg.StartSeq
		case c.cfg.DeliverNew:
			oc.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		cons, err := c.js.OrderedConsumer(ctx, c.cfg.Stream, oc)
		if err != nil {
			return nil, fmt.Errorf("consumer on %s: %w", c.cfg.Stream, err)
		}
		return cons, nil
	}
	want := jetstream.ConsumerConfig{
		Durable:        c.cfg.Durable,
		Description:    "cometstream consumer",
		FilterSubjects: c.subjects,
		AckPolicy:      ack,
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
			c.log.Info("consumer is ahead of the stored position; starting it over there", "acked", info.AckFloor.Stream, "start", c.cfg.StartSeq)
		} else {
			// Keep the position under the new filter.
			want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, max(c.cfg.StartSeq, info.AckFloor.Stream+1)
		}
		if err := c.js.DeleteConsumer(ctx, c.cfg.Stream, c.cfg.Durable); err != nil {
			return nil, fmt.Errorf("replace consumer %s: %w", c.cfg.Durable, err)
		}
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, want)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.cfg.Durable, err)
	}
	return cons, nil
}

func (c *Consumer) decode(m jetstream.Msg) (*Message, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	ev, err := Decode(m.Data())
	if err != nil {
		return nil, err
	}
	return &Message{Event: ev, Seq: md.Sequence.Stream, Subject: m.Subject(), Delivered: int(md.NumDelivered), Header: m.Headers(), Body: m.Data(), msg: m}, nil
}

// retry calls h with the batch until it succeeds, then acknowledges it.
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
		if c.cfg.Durable == "" {
			if !c.cfg.RetryForever {
				return err
			}
			wait := c.cfg.Backoff[min(attempt, len(c.cfg.Backoff))-1]
			c.log.Warn("handler failed; retrying the batch", "first_seq", batch[0].Seq, "messages", len(batch), "retry_in", wait, "err", err)
			select {
			case <-time.After(wait/2 + rand.N(wait)):
				continue
			case <-ctx.Done():
				return errShutdown
			}
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
			if err := c.deadLetter(ctx, m.msg, m.Delivered, err); err != nil {
				return err
			}
			return nil
		}
		wait := c.cfg.Backoff[min(attempt, len(c.cfg.Backoff))-1]
		wait = wait/2 + rand.N(wait) // jitter: 0.5x to 1.5x
		c.log.Warn("handler failed; retrying", "seq", m.Seq, "subject", m.Subject, "delivered", m.Delivered, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			_ = m.msg.Nak()
			return errShutdown
		}
		m.Delivered++
	}
}

// keepAlive tells the server the batch is still being worked on until stop
// is called, so AckWait does not redeliver it behind the handler's back.
func (c *Consumer) keepAlive(batch []*Message) (stop func()) {
	if c.cfg.Durable == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
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
	return func() { close(done) }
}

func (c *Consumer) ack(batch []*Message) error {
	if c.cfg.Durable == "" {
		return nil
	}
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
