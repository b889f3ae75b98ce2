package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
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
}

// Bridge delivers events to the configured endpoints.
type Bridge struct {
	cfg *Config
	o   Options
	m   *metrics
}

// New checks the options, validates cfg as Parse does when Parse did not
// (defaults, secrets, every field), and registers the metrics. It returns
// ErrNoJetStream, or an error wrapping ErrInvalidConfig.
func New(cfg *Config, o Options) (*Bridge, error) {
	if o.JetStream == nil {
		return nil, ErrNoJetStream
	}
	if cfg == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrInvalidConfig)
	}
	if o.Stream == "" {
		o.Stream = event.DefaultStream
	}
	if o.Prefix == "" {
		o.Prefix = event.DefaultPrefix
	}
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
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Bridge{cfg: cfg, o: o, m: m}, nil
}

// DeadLetterSubject is where an endpoint's exhausted deliveries go.
func (b *Bridge) DeadLetterSubject(endpoint string) string {
	return b.o.Prefix + "_dlq.webhook_" + endpoint
}

// Run delivers until ctx ends. An endpoint that answers 410 Gone is
// disabled until the bridge restarts; the others go on.
func (b *Bridge) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(b.cfg.Endpoints))
	for i := range b.cfg.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.runEndpoint(ctx, &b.cfg.Endpoints[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// target is one endpoint at run time.
type target struct {
	b       *Bridge
	ep      *Endpoint
	log     *slog.Logger
	client  *http.Client
	limiter *rate.Limiter
	cons    *consumer.Consumer
	disable context.CancelFunc
	// stopped is done once the endpoint is disabled.
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

func (b *Bridge) runEndpoint(ctx context.Context, ep *Endpoint) error {
	// Messages waiting for a retry count as pending: the window is wide so
	// that a few failing events do not hold back the rest.
	workers, pending := ep.Concurrency, max(1000, 4*ep.Concurrency)
	if ep.Ordered {
		// One message at a time, retried in place: nothing overtakes it.
		workers, pending = 1, 1
	}
	cons, err := consumer.New(consumer.Config{
		JetStream: b.o.JetStream, Stream: b.o.Stream, Prefix: b.o.Prefix, Durable: "webhook_" + ep.Name,
		Filter: ep.filter(), MaxAckPending: pending, AckWait: ep.Timeout + 30*time.Second,
		DeadLetterStream: b.cfg.DeadLetterStream, Logger: b.o.Logger,
	})
	if err != nil {
		return err
	}
	ctx, disable := context.WithCancel(ctx)
	defer disable()
	t := &target{b: b, ep: ep, log: b.o.Logger.With("endpoint", ep.Name), client: b.client(ep), cons: cons, disable: disable, stopped: ctx.Done()}
	if ep.RateLimit > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(ep.RateLimit), max(1, ep.Concurrency))
	}
	b.m.dlqDepth(ctx, b.o.JetStream, b.cfg.DeadLetterStream, ep.Name, b.DeadLetterSubject(ep.Name))
	t.log.Info("delivering", "url", redactURL(ep.URL), "workers", workers, "ordered", ep.Ordered)
	return cons.RunEach(ctx, workers, t.handle)
}

// redactURL drops credentials and the query string (which may hold tokens)
// from a URL shown in logs.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			s = s[:scheme+3] + s[at+1:]
		}
	}
	return s
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
		t.settle(m.Retry(0))
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
			t.log.Error("endpoint answered 410 Gone: disabled until the bridge restarts; its events wait in the stream", "event", m.ID)
			t.disable() // before handing the message back, so no worker retries it
			t.settle(m.Retry(0))
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
		wait := jitter(t.ep.Retry[attempt-1])
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
			t.settle(m.Retry(0))
			return
		}
	}
}

// sleep waits, keeping the message ours; false when the bridge stops.
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
		}
	}
}

func (t *target) settle(err error) {
	if err != nil {
		t.log.Warn("settling a message with the server failed; it will be redelivered", "err", err)
	}
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
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

// retryAfter reads a Retry-After header, capped at a day.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	d := time.Duration(0)
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && secs > 0 {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = at.Sub(now)
	}
	return max(0, min(d, 24*time.Hour))
}
