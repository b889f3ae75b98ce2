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
	report := []string{"report"}
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_passes_total", Help: "Passes over a report, by result (consistent, inconsistent, failed, unavailable).",
		}, []string{"report", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_comet_requests_total", Help: "HTTP requests to COMET, by status (\"error\" when no response arrived).",
		}, []string{"report", "status"}),
		rows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_report_rows", Help: "Rows seen by the last pass.",
		}, report),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_events_total", Help: "Events published, by op (created, updated, deleted, synced, schema, unavailable, held).",
		}, []string{"report", "op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cometstream_pass_duration_seconds", Help: "Duration of passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}, report),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_last_success_timestamp_seconds", Help: "Unix time of the last pass that completed.",
		}, report),
		rateWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_rate_limit_wait_seconds_total", Help: "Time spent waiting for a rate-limiter token.",
		}, report),
		snapshotRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_snapshot_rows", Help: "Rows in the report's snapshot bucket.",
		}, report),
		heldDeletes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_held_deletes", Help: "Deletes held back because they exceed max_delete_fraction.",
		}, report),
		failures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_consecutive_failures", Help: "Passes failed in a row; the report backs off while above zero.",
		}, report),
		kvWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_snapshot_writes_total", Help: "Writes to the snapshot bucket.",
		}, report),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_report_stalled", Help: "1 while the report has stopped polling (its next pass overdue, or its pass making no progress).",
		}, report),
		inconsistent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_inconsistent_passes", Help: "Passes in a row that read every page but were not consistent, so applied no deletes; 0 after a consistent pass.",
		}, report),
		overruns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_pass_overruns_total", Help: "Passes that took longer than the report's interval (the next one started at once).",
		}, report),
		userCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cometstream_user_requests_total", Help: "Requests to COMET by the reports of one COMET user (they share its budget); rate() over cometstream_user_rate_limit is the share of the budget used.",
		}, []string{"user"}),
		userLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cometstream_user_rate_limit", Help: "Calls a second COMET allows one user (rate_limit).",
		}, []string{"user"}),
	}
	for _, c := range []prometheus.Collector{m.passes, m.requests, m.rows, m.events, m.duration, m.lastSuccess, m.rateWait, m.snapshotRows, m.heldDeletes, m.failures, m.kvWrites, m.stalled, m.inconsistent, m.overruns, m.userCalls, m.userLimit} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
