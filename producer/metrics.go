package producer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the producer's Prometheus series. Labels carry report names,
// operations and HTTP statuses, never a URL or a key.
type metrics struct {
	passes       *prometheus.CounterVec   // report, result
	requests     *prometheus.CounterVec   // report, status
	rows         *prometheus.GaugeVec     // report
	events       *prometheus.CounterVec   // report, op
	duration     *prometheus.HistogramVec // report
	lastSuccess  *prometheus.GaugeVec     // report
	rateWait     *prometheus.CounterVec   // report
	snapshotRows *prometheus.GaugeVec     // report
	heldDeletes  *prometheus.GaugeVec     // report
	failures     *prometheus.GaugeVec     // report: consecutive failed passes
	kvWrites     *prometheus.CounterVec   // report
	stalled      *prometheus.GaugeVec     // report: 1 while it stopped polling
	inconsistent *prometheus.GaugeVec     // report: passes in a row not consistent
	overruns     *prometheus.CounterVec   // report: passes longer than the interval
	userCalls    *prometheus.CounterVec   // user: requests to COMET by a user's reports
	userLimit    *prometheus.GaugeVec     // user: the calls a second COMET allows it
}

// Pass results, the "result" label of cometstream_passes_total.
const (
	resultConsistent   = "consistent"
	resultInconsistent = "inconsistent"
	resultFailed       = "failed"
	resultUnavailable  = "unavailable"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := &registrar{reg: reg}
	m := &metrics{
		passes:   r.counter("cometstream_passes_total", "Passes over a report, by result (consistent, inconsistent, failed, unavailable).", "report", "result"),
		requests: r.counter("cometstream_comet_requests_total", "HTTP requests to COMET, by status (\"error\" when no response arrived).", "report", "status"),
		rows:     r.gauge("cometstream_report_rows", "Rows seen by the last pass.", "report"),
		events:   r.counter("cometstream_events_total", "Events published, by op (created, updated, deleted, synced, schema, unavailable, held).", "report", "op"),
		duration: r.histogram(prometheus.HistogramOpts{
			Name: "cometstream_pass_duration_seconds", Help: "Duration of passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}, "report"),
		lastSuccess:  r.gauge("cometstream_last_success_timestamp_seconds", "Unix time of the last pass that completed.", "report"),
		rateWait:     r.counter("cometstream_rate_limit_wait_seconds_total", "Time spent waiting for a rate-limiter token.", "report"),
		snapshotRows: r.gauge("cometstream_snapshot_rows", "Rows in the report's snapshot bucket.", "report"),
		heldDeletes:  r.gauge("cometstream_held_deletes", "Deletes held back because they exceed max_delete_fraction.", "report"),
		failures:     r.gauge("cometstream_consecutive_failures", "Passes failed in a row; the report backs off while above zero.", "report"),
		kvWrites:     r.counter("cometstream_snapshot_writes_total", "Writes to the snapshot bucket.", "report"),
		stalled:      r.gauge("cometstream_report_stalled", "1 while the report has stopped polling (its next pass overdue, or its pass making no progress).", "report"),
		inconsistent: r.gauge("cometstream_inconsistent_passes", "Passes in a row that read every page but were not consistent, so applied no deletes; 0 after a consistent pass.", "report"),
		overruns:     r.counter("cometstream_pass_overruns_total", "Passes that took longer than the report's interval (the next one started at once).", "report"),
		userCalls:    r.counter("cometstream_user_requests_total", "Requests to COMET by the reports of one COMET user (they share its budget); rate() over cometstream_user_rate_limit is the share of the budget used.", "user"),
		userLimit:    r.gauge("cometstream_user_rate_limit", "Calls a second COMET allows one user (rate_limit).", "user"),
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// registrar creates series and registers them in order, keeping the first
// registration error; after it, it registers nothing more.
type registrar struct {
	reg prometheus.Registerer
	err error
}

func (r *registrar) register(c prometheus.Collector) {
	if r.err == nil {
		r.err = r.reg.Register(c)
	}
}

func (r *registrar) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	r.register(c)
	return c
}

func (r *registrar) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	r.register(g)
	return g
}

func (r *registrar) histogram(opts prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(opts, labels)
	r.register(h)
	return h
}
