package consumer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
)

// lagInterval is how often Materialize reads, from the stream, where each
// report's events end, to compute cometstream_sink_lag_events.
const lagInterval = 5 * time.Second

// sinkMetrics are Materialize's Prometheus series. Labels carry report
// names and operations, as the producer's do.
type sinkMetrics struct {
	events   *prometheus.CounterVec // report, op
	position *prometheus.GaugeVec   // report
	lag      *prometheus.GaugeVec   // report
	// only, when set, are the reports the sink follows: a position the
	// store keeps for another report is not followed by this run.
	only map[string]bool

	mu sync.Mutex
	// pos is each report's position (the sequence of its last event
	// applied); seen is the highest sequence handled: the stream is read in
	// order, so every selected event at or below it is applied.
	pos  map[string]uint64
	seen uint64
	// last is the stream's last sequence of each report's events, as last
	// read.
	last     map[string]uint64
	failures prometheus.Gauge
}

func newSinkMetrics(reg prometheus.Registerer, reports []string) (*sinkMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	report := []string{"report"}
	m := &sinkMetrics{pos: map[string]uint64{}, last: map[string]uint64{}}
	if len(reports) > 0 {
		m.only = map[string]bool{}
		for _, r := range reports {
			m.only[r] = true
		}
	}
	var err error
	if m.events, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cometstream_sink_events_total",
		Help: "Events applied by the sink, by report and op (created, updated, deleted, synced, schema, unavailable, held, failed).",
	}, []string{"report", "op"})); err != nil {
		return nil, err
	}
	if m.position, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cometstream_sink_position", Help: "Stream sequence of the last event of the report the sink applied.",
	}, report)); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cometstream_sink_lag_events",
		Help: "Stream sequences from the sink's position in the report to the report's last event in the stream (0: caught up), refreshed every few seconds.",
	}, report)); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cometstream_sink_batch_failures",
		Help: "Times in a row the batch being applied has failed (0: applying); the sink retries it until it goes in.",
	})); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name: a Materialize started again on the same Registerer goes on
// counting in the same series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// tally counts the events of a batch until they are committed.
type tally struct {
	m      *sinkMetrics
	counts map[[2]string]float64 // report, op
}

func (m *sinkMetrics) batch() *tally { return &tally{m: m, counts: map[[2]string]float64{}} }

// add counts an event applied (not yet committed).
func (t *tally) add(s event.Subject) {
	op := string(s.Kind)
	if s.Row {
		op = string(s.Op)
	}
	t.counts[[2]string{s.Report, op}]++
}

// committed counts the events added since the last commit.
func (t *tally) committed() {
	for k, n := range t.counts {
		t.m.events.WithLabelValues(k[0], k[1]).Add(n)
	}
	clear(t.counts)
}

// handled records that every selected event up to seq is applied, and the
// reports' positions.
func (m *sinkMetrics) handled(seq uint64, positions map[string]uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = max(m.seen, seq)
	for r, p := range positions {
		if strings.HasPrefix(r, "#") || m.only != nil && !m.only[r] { // Materialize's own (streamKey), or not followed
			continue
		}
		m.pos[r] = p
		m.position.WithLabelValues(r).Set(float64(p))
	}
	m.setLagLocked()
}

// lastSeq is the sequence of a batch's last message, 0 for none.
func lastSeq(msgs []*Message) uint64 {
	if len(msgs) == 0 {
		return 0
	}
	return msgs[len(msgs)-1].Seq
}

// setLagLocked sets each report's lag from the last sequences read: a
// report's events at or below seen are applied, whatever its position says.
func (m *sinkMetrics) setLagLocked() {
	for r, p := range m.pos {
		lag := uint64(0)
		if last, at := m.last[r], max(p, m.seen); last > at {
			lag = last - at
		}
		m.lag.WithLabelValues(r).Set(float64(lag))
	}
}

// follow refreshes the lag every lagInterval until stop is called, which
// waits for it.
func (m *sinkMetrics) follow(ctx context.Context, js jetstream.JetStream, stream, prefix string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lagInterval)
		defer t.Stop()
		for {
			m.refresh(ctx, js, stream, prefix)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// refresh reads where each report's events end. One request tells whether
// the sink has handled the whole stream (every lag is then 0); only when it
// has not is each report's last event looked up, one request per report.
// A failed request leaves the last values.
func (m *sinkMetrics) refresh(ctx context.Context, js jetstream.JetStream, stream, prefix string) {
	rctx, cancel := context.WithTimeout(ctx, lagInterval)
	defer cancel()
	s, err := js.Stream(rctx, stream)
	if err != nil {
		return
	}
	m.mu.Lock()
	seen := m.seen
	reports := make([]string, 0, len(m.pos))
	for r := range m.pos {
		reports = append(reports, r)
	}
	m.mu.Unlock()
	last := map[string]uint64{}
	if s.CachedInfo().State.LastSeq > seen {
		for _, r := range reports {
			msg, err := s.GetLastMsgForSubject(rctx, event.ReportFilter(prefix, r))
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				last[r] = 0
			case err == nil:
				last[r] = msg.Sequence
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for r, seq := range last {
		m.last[r] = seq
	}
	m.setLagLocked()
}
