package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/retry"
)

// MaxResponseBody is how much of a receiver's response is read.
const MaxResponseBody = 64 << 10

// Dead-letter headers added by the bridge.
const (
	HeaderEndpoint = "Cometstream-Webhook-Endpoint"
	HeaderStatus   = "Cometstream-Webhook-Status"
	HeaderAttempts = "Cometstream-Webhook-Attempts"
)

// Options are the bridge's connections.
type Options struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's (defaults COMET and comet).
	Stream, Prefix string
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	// Now is the clock of webhook-timestamp.
	Now func() time.Time
	// Durable prefixes the endpoints' consumer names, "<Durable>_<endpoint>";
	// default DefaultDurable.
	Durable string
	// Reports, when set, limits every endpoint to these reports (within
	// the endpoint's own reports; an endpoint with none of them delivers
	// nothing).
	Reports []string
	// FromStart starts every endpoint whose consumer does not exist yet at
	// the beginning of the stream, as Endpoint.Start StartAll does.
	FromStart bool
}

// DefaultDurable is the prefix of the endpoints' consumer names.
const DefaultDurable = "webhook"

var durableRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Bridge delivers events to the configured endpoints.
type Bridge struct {
	cfg    *Config
	o      Options
	m      *metrics
	eps    []*endpointState
	byName map[string]*endpointState
	kv     jetstream.KeyValue // set by Run; nil when the bucket cannot be used
}

// New checks the options, validates cfg as Parse does when Parse did not
// (defaults, secrets, every field), and registers the metrics. It returns
// ErrNoJetStream, or an error wrapping ErrInvalidConfig or
// ErrInvalidOptions.
func New(cfg *Config, o Options) (*Bridge, error) {
	if o.JetStream == nil {
		return nil, ErrNoJetStream
	}
	if cfg == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrInvalidConfig)
	}
	o.Stream = cmp.Or(o.Stream, event.DefaultStream)
	o.Prefix = cmp.Or(o.Prefix, event.DefaultPrefix)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.validated {
		if err := cfg.Validate(o.Logger); err != nil {
			return nil, err
		}
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Durable = cmp.Or(o.Durable, DefaultDurable)
	if !durableRE.MatchString(o.Durable) {
		return nil, fmt.Errorf("%w: durable prefix %q must match [A-Za-z0-9_-]+", ErrInvalidOptions, o.Durable)
	}
	for _, r := range o.Reports {
		if !event.NameRE.MatchString(r) {
			return nil, fmt.Errorf("%w: report %q must match [a-z0-9_-]+", ErrInvalidOptions, r)
		}
	}
	b := &Bridge{cfg: cfg, o: o, byName: map[string]*endpointState{}}
	delivering := 0
	for i := range cfg.Endpoints {
		ep := &cfg.Endpoints[i]
		st := &endpointState{ep: ep, durable: b.Durable(ep.Name), filter: ep.filter(), wake: make(chan struct{})}
		st.filter.Reports, st.skip = within(ep.Reports, o.Reports)
		if !st.skip {
			delivering++
		}
		b.eps = append(b.eps, st)
		b.byName[ep.Name] = st
	}
	if delivering == 0 {
		return nil, fmt.Errorf("%w: no endpoint delivers any of the reports %s", ErrInvalidOptions, strings.Join(o.Reports, ", "))
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	b.m = m
	return b, nil
}

// within is what an endpoint's own reports leave of the selected ones
// (none selected: its own; none of its own: the selected); none says
// nothing is left.
func within(own, selected []string) (reports []string, none bool) {
	if len(selected) == 0 {
		return own, false
	}
	if len(own) == 0 {
		return selected, false
	}
	for _, r := range own {
		if slices.Contains(selected, r) {
			reports = append(reports, r)
		}
	}
	return reports, len(reports) == 0
}

// Durable is the name of an endpoint's consumer: "<Options.Durable>_<endpoint>".
func (b *Bridge) Durable(endpoint string) string { return b.o.Durable + "_" + endpoint }

// DeadLetterSubject is where an endpoint's exhausted deliveries go.
func (b *Bridge) DeadLetterSubject(endpoint string) string {
	return b.o.Prefix + "_dlq.webhook_" + endpoint
}

// Run delivers until ctx ends, each endpoint through its own durable
// consumer. An endpoint that answers 410 Gone is disabled, and the
// disablement recorded in the bucket BucketName, so that it stays disabled
// across restarts; its events wait in the stream until Enable (or another
// process removing the record) re-enables it, which a running bridge
// notices within seconds. Run keeps running while every endpoint is
// disabled (Ready is then false). It returns nil when ctx ends; when an
// endpoint stops on an error (its consumer cannot be created, the bucket
// cannot be read), it stops the others and returns that error.
func (b *Bridge) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.watchState(ctx)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil // asked to stop while starting
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.followMetrics(ctx)
	}()
	if w != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.follow(ctx, w)
		}()
	}
	errs := make([]error, len(b.eps))
	enabled := 0
	for i, st := range b.eps {
		if st.skip {
			b.o.Logger.Info("endpoint has no report in common with the selected reports: not delivering", "endpoint", st.ep.Name, "reports", strings.Join(b.o.Reports, ","))
			continue
		}
		if st.enabled() {
			enabled++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = b.runEndpoint(ctx, st); errs[i] != nil {
				cancel()
			}
		}()
	}
	if enabled == 0 {
		b.o.Logger.Warn("no endpoint is enabled: nothing is delivered and the bridge is not ready until `cometstream sink webhook enable`")
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready reports whether the bridge is connected to NATS and at least one
// endpoint is enabled (the /readyz of `sink webhook`).
func (b *Bridge) Ready() bool {
	if nc := b.o.JetStream.Conn(); nc == nil || !nc.IsConnected() {
		return false
	}
	for _, st := range b.eps {
		if st.enabled() {
			return true
		}
	}
	return false
}

// target is one endpoint during one delivery run.
type target struct {
	b       *Bridge
	st      *endpointState
	ep      *Endpoint
	log     *slog.Logger
	client  *http.Client
	limiter *rate.Limiter
	cons    *consumer.Consumer
	disable context.CancelFunc
	// stopped is done once the run ends (the endpoint is disabled).
	stopped <-chan struct{}
}

func (t *target) disabled() bool {
	if t.stopped == nil {
		return false
	}
	select {
	case <-t.stopped:
		return true
	default:
		return false
	}
}

func (b *Bridge) client(ep *Endpoint) *http.Client {
	dialer := &net.Dialer{Timeout: ep.Timeout, Control: b.cfg.control}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: ep.Timeout,
		MaxIdleConnsPerHost: ep.Concurrency,
		// Proxies would dial on our behalf, past the address guard.
		Proxy: nil,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       ep.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// result of one attempt.
type result struct {
	status     int
	retryAfter time.Duration
	err        error
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

func (r result) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return "HTTP " + strconv.Itoa(r.status)
}

// handle settles one message: delivered, retried later, dead-lettered, or
// (410) the endpoint disabled.
func (t *target) handle(ctx context.Context, m *consumer.Message) {
	if t.disabled() {
		t.settle(m.Retry(handBack))
		return
	}
	for attempt := m.Delivered; ; attempt++ {
		r := t.attempt(ctx, m)
		switch {
		case r.ok():
			t.b.m.deliveries.WithLabelValues(t.ep.Name, "delivered").Inc()
			t.settle(m.Ack())
			return
		case r.status == http.StatusGone:
			t.b.m.deliveries.WithLabelValues(t.ep.Name, "disabled").Inc()
			t.disable() // before handing the message back, so no worker retries it
			t.settle(m.Retry(handBack))
			t.gone(ctx, m.ID, r)
			return
		case attempt > len(t.ep.Retry):
			t.b.m.deliveries.WithLabelValues(t.ep.Name, "dead_letter").Inc()
			hdr := nats.Header{}
			hdr.Set(HeaderEndpoint, t.ep.Name)
			hdr.Set(HeaderStatus, strconv.Itoa(r.status))
			hdr.Set(HeaderAttempts, strconv.Itoa(attempt))
			if err := t.cons.DeadLetter(ctx, t.b.DeadLetterSubject(t.ep.Name), m, fmt.Errorf("%s after %d attempts", r, attempt), hdr); err != nil {
				t.log.Error("dead-letter failed; the event will be retried", "event", m.ID, "err", err)
				t.settle(m.Retry(time.Minute))
				return
			}
			t.b.m.dlqDepth(ctx, t.b.o.JetStream, t.b.cfg.DeadLetterStream, t.ep.Name, t.b.DeadLetterSubject(t.ep.Name))
			t.log.Error("delivery dead-lettered", "event", m.ID, "attempts", attempt, "last", r.String())
			return
		}
		wait := retry.Jitter(t.ep.Retry[attempt-1], 0.2)
		if r.retryAfter > wait {
			wait = r.retryAfter
		}
		t.b.m.deliveries.WithLabelValues(t.ep.Name, "retry").Inc()
		t.log.Warn("delivery failed; retrying", "event", m.ID, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "last", r.String())
		if !t.ep.Ordered {
			// The server redelivers it after the wait; the count of
			// deliveries carries the schedule across restarts.
			t.settle(m.Retry(wait))
			return
		}
		if !t.sleep(ctx, m, wait) {
			t.settle(m.Retry(handBack))
			return
		}
	}
}

// handBack delays the redelivery of a message handed back by a run that
// stops: delivered at once, it would go to the stopping run's pull request
// and be lost in flight, back only after AckWait.
const handBack = time.Second

// sleep waits, keeping the message ours; false when the run stops (the
// bridge stops or the endpoint is disabled).
func (t *target) sleep(ctx context.Context, m *consumer.Message, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	keep := time.NewTicker(10 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-deadline.C:
			return true
		case <-keep.C:
			_ = m.InProgress()
		case <-ctx.Done():
			return false
		case <-t.stopped:
			return false
		}
	}
}

func (t *target) settle(err error) {
	if err != nil {
		t.log.Warn("settling a message with the server failed; it will be redelivered", "err", err)
	}
}

// attempt makes one signed POST.
func (t *target) attempt(ctx context.Context, m *consumer.Message) result {
	if t.limiter != nil {
		if err := t.limiter.Wait(ctx); err != nil {
			return result{err: err}
		}
	}
	start := time.Now()
	r := t.post(ctx, m.ID, m.Body)
	status := "error"
	if r.status != 0 {
		status = strconv.Itoa(r.status)
	}
	t.b.m.attempts.WithLabelValues(t.ep.Name, status).Inc()
	t.b.m.latency.WithLabelValues(t.ep.Name).Observe(time.Since(start).Seconds())
	return r
}

// post sends one delivery.
func (t *target) post(ctx context.Context, id string, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.ep.URL, strings.NewReader(string(body)))
	if err != nil {
		return result{err: err}
	}
	ts := t.b.o.Now().Unix()
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "cometstream-webhook/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(t.ep.keys, id, ts, body))
	resp, err := t.client.Do(req)
	if err != nil {
		return result{err: unwrapURL(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
	r := result{status: resp.StatusCode}
	if r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable {
		r.retryAfter = retryAfter(resp.Header.Get("Retry-After"), t.b.o.Now())
	}
	return r
}

// unwrapURL keeps the cause of a client error without the URL, which may
// carry a token in its query.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// retryAfter reads a Retry-After header, capped at a day; 0 when absent.
func retryAfter(h string, now time.Time) time.Duration {
	d, _ := retry.RetryAfter(h, now, 24*time.Hour)
	return d
}
