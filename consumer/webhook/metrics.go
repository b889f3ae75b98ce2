package webhook

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	deliveries *prometheus.CounterVec   // endpoint, result
	attempts   *prometheus.CounterVec   // endpoint, status
	latency    *prometheus.HistogramVec // endpoint
	deadLetter *prometheus.GaugeVec     // endpoint
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_webhook_deliveries_total", Help: "Webhook deliveries by endpoint and result (delivered, retry, dead_letter, disabled).",
		}, []string{"endpoint", "result"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_webhook_attempts_total", Help: "HTTP attempts by endpoint and status (\"error\" when no response arrived).",
		}, []string{"endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cometstream_webhook_latency_seconds", Help: "Time of one HTTP attempt.", Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		deadLetter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_webhook_dead_letters", Help: "Deliveries waiting in the dead-letter stream, by endpoint.",
		}, []string{"endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.attempts, m.latency, m.deadLetter} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// dlqDepth sets the dead-letter gauge of an endpoint from the stream.
func (m *metrics) dlqDepth(ctx context.Context, js jetstream.JetStream, stream, endpoint, subject string) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		m.deadLetter.WithLabelValues(endpoint).Set(0)
		return
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return
	}
	m.deadLetter.WithLabelValues(endpoint).Set(float64(info.State.Subjects[subject]))
}
