package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// metricsInterval is how often a running bridge reads each endpoint's
// dead letters and lag from the server: a replay by another process, or an
// operator purging the dead-letter stream, shows within it.
const metricsInterval = 5 * time.Second

// metrics are the bridge's Prometheus series. Labels carry endpoint names,
// results and HTTP statuses, never a URL.
type metrics struct {
	deliveries *prometheus.CounterVec   // endpoint, result
	attempts   *prometheus.CounterVec   // endpoint, status
	latency    *prometheus.HistogramVec // endpoint
	deadLetter *prometheus.GaugeVec     // endpoint
	lag        *prometheus.GaugeVec     // endpoint
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	endpoint := []string{"endpoint"}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_webhook_deliveries_total", Help: "Webhook deliveries by endpoint and result (delivered, retry, dead_letter, disabled).",
		}, []string{"endpoint", "result"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_webhook_attempts_total", Help: "HTTP attempts by endpoint and status (\"error\" when no response arrived).",
		}, []string{"endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cometstream_webhook_latency_seconds", Help: "Time of one HTTP attempt.", Buckets: prometheus.DefBuckets,
		}, endpoint),
		deadLetter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_webhook_dead_letters", Help: "Deliveries waiting in the dead-letter stream, by endpoint; recounted every few seconds.",
		}, endpoint),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_webhook_lag_events", Help: "Events the endpoint's consumer has not settled yet (not yet handed out, plus handed out and waiting for a delivery or a retry); refreshed every few seconds.",
		}, endpoint),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.attempts, m.latency, m.deadLetter, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// dlqDepth sets the dead-letter gauge of an endpoint from the stream. A
// request that fails leaves the gauge as it was.
func (m *metrics) dlqDepth(ctx context.Context, js jetstream.JetStream, stream, endpoint, subject string) {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		m.deadLetter.WithLabelValues(endpoint).Set(0)
		return
	}
	if err != nil {
		return
	}
	m.deadLetters(ctx, s, endpoint, subject)
}

// deadLetters sets the dead-letter gauge of an endpoint: the messages
// under its subject in the dead-letter stream s.
func (m *metrics) deadLetters(ctx context.Context, s jetstream.Stream, endpoint, subject string) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return
	}
	m.deadLetter.WithLabelValues(endpoint).Set(float64(info.State.Subjects[subject]))
}

// followMetrics refreshes the endpoints' dead letters and lag every
// metricsInterval until ctx ends.
func (b *Bridge) followMetrics(ctx context.Context) {
	t := time.NewTicker(metricsInterval)
	defer t.Stop()
	for {
		b.refreshMetrics(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshMetrics reads, for each endpoint that delivers, the count of its
// dead letters and its consumer's pending and unacknowledged messages:
// one request for the dead-letter stream and two per endpoint.
func (b *Bridge) refreshMetrics(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, metricsInterval)
	defer cancel()
	dlq, err := b.o.JetStream.Stream(ctx, b.cfg.DeadLetterStream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		dlq = nil // unknown: leave the gauges
	}
	for _, st := range b.eps {
		if st.skip {
			continue
		}
		name := st.ep.Name
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			b.m.deadLetter.WithLabelValues(name).Set(0)
		case dlq != nil:
			b.m.deadLetters(ctx, dlq, name, b.DeadLetterSubject(name))
		}
		c, cerr := b.o.JetStream.Consumer(ctx, b.o.Stream, st.durable)
		switch {
		case errors.Is(cerr, jetstream.ErrConsumerNotFound):
			b.m.lag.WithLabelValues(name).Set(0) // not created yet: nothing waits for it
		case cerr == nil:
			info := c.CachedInfo()
			b.m.lag.WithLabelValues(name).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
	}
}
