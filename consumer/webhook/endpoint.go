package webhook

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/internal/redact"
)

// endpointState is one endpoint at run time: its consumer and whether it
// may deliver.
type endpointState struct {
	ep      *Endpoint
	durable string
	filter  consumer.Filter
	// skip: the endpoint has no report in common with Options.Reports.
	skip bool

	mu    sync.Mutex
	known bool         // the bucket was read (or cannot be)
	off   *Disablement // the endpoint's record in the bucket
	rev   uint64       // revision of the last record change seen
	// waitRev is the revision of a record this bridge wrote; until the
	// watch has seen it the endpoint stays stopped. pendingRev while the
	// write is under way.
	waitRev uint64
	// local: disabled in this process only (the record could not be
	// written).
	local *Disablement
	stop  context.CancelFunc // ends the delivery under way
	wake  chan struct{}      // closed on every change
}

const pendingRev = math.MaxUint64

func (s *endpointState) broadcast() {
	if s.wake != nil {
		close(s.wake)
	}
	s.wake = make(chan struct{})
}

func (s *endpointState) markKnown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known = true
	s.broadcast()
}

// load applies a record (nil: removed) at a revision of the bucket, and
// says whether the endpoint went from enabled to disabled or back.
func (s *endpointState) load(d *Disablement, rev uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev < s.rev {
		return false
	}
	changed := (s.off == nil) != (d == nil)
	s.rev, s.off = rev, d
	if d != nil && s.stop != nil {
		s.stop()
	}
	s.broadcast()
	return changed
}

func (s *endpointState) enabledLocked() bool {
	return !s.skip && s.known && s.off == nil && s.local == nil && s.rev >= s.waitRev
}

func (s *endpointState) enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enabledLocked()
}

// record is why the endpoint is disabled; nil when it is not.
func (s *endpointState) record() *Disablement {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local != nil {
		return s.local
	}
	return s.off
}

// waitEnabled waits until the endpoint may deliver; false when ctx ends.
func (s *endpointState) waitEnabled(ctx context.Context) bool {
	for {
		s.mu.Lock()
		ok, wake := s.enabledLocked(), s.wake
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		}
	}
}

// begin registers the stop of a delivery run; false when the endpoint was
// disabled meanwhile.
func (s *endpointState) begin(stop context.CancelFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabledLocked() {
		return false
	}
	s.stop = stop
	return true
}

func (s *endpointState) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = nil
}

// disabling claims the disabling of the endpoint: false when another
// worker has already claimed it, or it is disabled, or its record is
// written and not yet seen by the watch (a second 410 of deliveries in
// flight together would write and log it again).
func (s *endpointState) disabling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev < s.waitRev || s.local != nil || s.off != nil {
		return false
	}
	s.waitRev = pendingRev
	return true
}

// disabled settles a claimed disabling: recorded at rev, or, when err is
// set, in this process only.
func (s *endpointState) disabled(d Disablement, rev uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.local, s.waitRev = &d, 0
	} else {
		s.waitRev = rev
	}
	s.broadcast()
}

// window is how many deliveries run at once and how many messages the
// consumer hands out before they are settled.
func (e *Endpoint) window() (workers, pending int) {
	if e.Ordered {
		// One message at a time, retried in place: nothing overtakes it.
		return 1, 1
	}
	// Messages waiting for a retry count as pending: the window is wide so
	// that a few failing events do not hold back the rest.
	return e.Concurrency, max(1000, 4*e.Concurrency)
}

func (b *Bridge) consumerConfig(st *endpointState) consumer.Config {
	_, pending := st.ep.window()
	return consumer.Config{
		JetStream: b.o.JetStream, Stream: b.o.Stream, Prefix: b.o.Prefix, Durable: st.durable,
		Filter: st.filter, MaxAckPending: pending, AckWait: st.ep.Timeout + 30*time.Second,
		DeadLetterStream: b.cfg.DeadLetterStream, Logger: b.o.Logger,
	}
}

// start is where an endpoint whose consumer does not exist begins: its
// start, or StartAll under Options.FromStart.
func (b *Bridge) start(st *endpointState) Start {
	if b.o.FromStart {
		return StartAll
	}
	return st.ep.Start
}

// ensureConsumer creates the consumer of an endpoint starting at new
// events, when it does not exist and the endpoint starts so; with
// StartAll the consumer package creates it at the beginning. The settings
// are those consumer.Consumer opens it with, so that it keeps this one
// (and its position) rather than replacing it.
func (b *Bridge) ensureConsumer(ctx context.Context, st *endpointState, log func(msg string, args ...any)) error {
	if b.start(st) == StartAll {
		return nil
	}
	_, err := b.o.JetStream.Consumer(ctx, b.o.Stream, st.durable)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s: %w", st.durable, err)
	}
	cc := b.consumerConfig(st)
	subjects, err := cc.Filter.Subjects(b.o.Prefix)
	if err != nil {
		return fmt.Errorf("%w: %w", consumer.ErrFilter, err)
	}
	want := jetstream.ConsumerConfig{
		Durable:        cc.Durable,
		Description:    "cometstream consumer",
		FilterSubjects: subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cc.AckWait,
		MaxAckPending:  cc.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if len(subjects) == 1 {
		want.FilterSubject, want.FilterSubjects = subjects[0], nil
	}
	_, err = b.o.JetStream.CreateConsumer(ctx, b.o.Stream, want)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil // created meanwhile, by another bridge
	}
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", st.durable, err)
	}
	log("new endpoint: delivering the events published from now on (start: new)", "consumer", st.durable)
	return nil
}

// runEndpoint delivers an endpoint's events while it is enabled, until ctx
// ends.
func (b *Bridge) runEndpoint(ctx context.Context, st *endpointState) error {
	cons, err := consumer.New(b.consumerConfig(st))
	if err != nil {
		return err
	}
	log := b.o.Logger.With("endpoint", st.ep.Name)
	client := b.client(st.ep)
	var limiter *rate.Limiter
	if st.ep.RateLimit > 0 {
		limiter = rate.NewLimiter(rate.Limit(st.ep.RateLimit), max(1, st.ep.Concurrency))
	}
	workers, _ := st.ep.window()
	for {
		if !st.waitEnabled(ctx) {
			return nil
		}
		if err := b.ensureConsumer(ctx, st, log.Info); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		run, stop := context.WithCancel(ctx)
		if !st.begin(stop) {
			stop()
			continue
		}
		t := &target{b: b, st: st, ep: st.ep, log: log, client: client, limiter: limiter, cons: cons, disable: stop, stopped: run.Done()}
		log.Info("delivering", "url", redact.URL(st.ep.URL), "consumer", st.durable, "workers", workers, "ordered", st.ep.Ordered)
		err := cons.RunEach(run, workers, t.handle)
		st.end()
		stop()
		if errors.Is(err, jetstream.ErrConsumerDeleted) && ctx.Err() == nil {
			// Deleted under the bridge (nats consumer rm): as after a
			// reset, it is created again as the endpoint starts.
			log.Warn("the endpoint's consumer was deleted while the bridge delivered; creating it again", "consumer", st.durable, "start", b.start(st), "err", err)
			continue
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// gone disables the endpoint after a 410 Gone, recording it in the bucket
// so that a restart keeps it disabled.
func (t *target) gone(ctx context.Context, eventID string, r result) {
	if !t.st.disabling() {
		return
	}
	d := Disablement{Endpoint: t.ep.Name, DisabledAt: t.b.o.Now().UTC(), Status: r.status, EventID: eventID, Reason: fmt.Sprintf("the endpoint answered %d %s", r.status, http.StatusText(r.status))}
	rev, err := t.b.record(ctx, d)
	t.st.disabled(d, rev, err)
	if err != nil {
		t.log.Error("endpoint answered 410 Gone: disabled until the bridge restarts (the disablement could not be recorded in NATS); its events wait in the stream",
			"event", eventID, "bucket", BucketName(t.b.o.Prefix), "err", err)
		return
	}
	t.log.Error("endpoint answered 410 Gone: disabled, across restarts, until `"+EnableCommand(t.ep.Name)+"`; its events wait in the stream",
		"event", eventID, "bucket", BucketName(t.b.o.Prefix), "key", EndpointKey(t.ep.Name))
}
