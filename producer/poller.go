package producer

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/retry"
)

// confirmDelay is how soon a pass that found rows missing is followed by the
// pass that confirms their deletion.
const confirmDelay = time.Second

// maxEarly bounds how much sooner than its interval a pass may start.
const maxEarly = time.Second

// passWait is the wait from one pass's start to the next: the interval
// less a little jitter, so that reports with the same interval do not fall
// into step (up to a tenth of it, at most maxEarly), and never more, so that
// a report is never staler than its interval and one pass.
func passWait(interval time.Duration) time.Duration {
	early := min(interval/10, maxEarly) / 2
	return interval - retry.Jitter(early, 1)
}

// loop polls one report until ctx ends: on its interval (a little sooner,
// see passWait), counted from the start of one pass to the start of the
// next (a pass that overruns its interval is followed at once), sooner to
// confirm deletes, and backing off while it fails.
func (p *Producer) loop(ctx context.Context, name string) {
	r := p.reports[name]
	r.watch.begin()
	defer r.watch.end()
	// Spread the first passes of many reports over a moment.
	wait := time.Duration(rand.Int64N(int64(min(r.cfg.Interval/10, 2*time.Second)) + 1))
	for {
		r.watch.waiting(time.Now().Add(wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		r.watch.polling(start)
		_, err := p.Poll(ctx, name)
		if ctx.Err() != nil {
			return
		}
		wait = p.nextWait(r, err)
		if err == nil && !r.soon {
			// The interval runs from this pass's start.
			wait = max(0, wait-time.Since(start))
			if wait == 0 {
				p.m.overruns.WithLabelValues(name).Inc()
			}
		}
	}
}

// nextWait decides when a report polls next.
func (p *Producer) nextWait(r *reporter, err error) time.Duration {
	name := r.cfg.Name
	r.confirming, r.soon = false, false
	if err == nil {
		r.failures = 0
		p.m.failures.WithLabelValues(name).Set(0)
		if r.confirmSoon || r.probeSoon {
			r.confirming, r.soon = r.confirmSoon, true
			r.confirmSoon, r.probeSoon = false, false
			return confirmDelay
		}
		return passWait(r.cfg.Interval)
	}
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrFenced) {
		// Not the report's fault: the lease holder changed. The unit stops
		// this loop when the lease is gone; recover and retry soon otherwise.
		return retry.Jitter(min(r.cfg.Interval, 5*time.Second), 0.1)
	}
	r.failures++
	p.m.failures.WithLabelValues(name).Set(float64(r.failures))
	wait := retry.Jitter(failureBackoff(r.cfg.Interval, r.failures), 0.1)
	attrs := []any{"failures", r.failures, "retry_in", wait.Round(time.Second), "err", err}
	switch {
	case Permanent(err):
		r.log.Error("report cannot be polled until its configuration is fixed", attrs...)
	case errors.Is(err, comet.ErrReportUnavailable):
		r.log.Warn("report unavailable, backing off", attrs...)
	default:
		r.log.Error("pass failed, backing off", attrs...)
	}
	return wait
}

// failureBackoff is the wait after the failures-th failure in a row:
// doubling from the interval up to half an hour, or the interval when that
// is longer.
func failureBackoff(interval time.Duration, failures int) time.Duration {
	ceiling := max(30*time.Minute, interval)
	if failures <= 1 {
		return min(interval, ceiling)
	}
	return min(interval<<min(failures-1, 10), ceiling)
}
