package producer

import (
	"context"
	"sync"
	"time"
)

// A report that stops polling for any reason — its loop stuck, a pass that
// makes no progress — is noticed: logged when it starts and when it ends,
// counted in cometstream_report_stalled, and the producer is not ready
// while it lasts.

// stallGrace is how late past its due time a pass may start before the
// report counts as stalled.
const stallGrace = 30 * time.Second

// watch is what the watchdog knows of one report's loop.
type watch struct {
	mu       sync.Mutex
	active   bool      // a loop polls this report (this producer holds its lease)
	due      time.Time // when the next pass should start; zero while polling
	progress time.Time // the last sign of life of the pass under way
	stalled  bool
}

func (w *watch) begin() {
	w.mu.Lock()
	w.active = true
	w.mu.Unlock()
}

func (w *watch) end() {
	w.mu.Lock()
	w.active, w.due = false, time.Time{}
	w.mu.Unlock()
}

func (w *watch) waiting(due time.Time) {
	w.mu.Lock()
	w.due = due
	w.mu.Unlock()
}

func (w *watch) polling(now time.Time) {
	w.mu.Lock()
	w.due, w.progress = time.Time{}, now
	w.mu.Unlock()
}

// alive records progress of the pass under way (a page arrived).
func (w *watch) alive(now time.Time) {
	w.mu.Lock()
	w.progress = now
	w.mu.Unlock()
}

// check says whether the report is stalled now, and whether that changed.
func (w *watch) check(now time.Time, passStall time.Duration) (stalled, changed bool, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.active:
		stalled = false
	case !w.due.IsZero():
		stalled = now.After(w.due.Add(stallGrace))
		why = "its next pass is overdue"
	default:
		stalled = now.Sub(w.progress) > passStall
		why = "the pass under way has made no progress"
	}
	changed = stalled != w.stalled
	w.stalled = stalled
	return stalled, changed, why
}

// passStall is how long a pass may go without a page before the report
// counts as stalled: every retry of a page, with its waits, and a minute.
func (r *reporter) passStall() time.Duration {
	cc := r.cfg.Comet
	timeout := cc.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	retries := cc.MaxRetries
	if retries <= 0 {
		retries = 6
	}
	return time.Duration(retries+1)*(timeout+30*time.Second) + time.Minute + 2*r.p.cfg.AckTimeout
}

// watchdog checks every report every few seconds until ctx ends.
func (p *Producer) watchdog(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.checkStalls(time.Now())
		}
	}
}

// checkStalls sets each report's stalled gauge, logs the reports that
// stalled or poll again since the last check, and counts the stalled ones
// for the readiness check.
func (p *Producer) checkStalls(now time.Time) {
	n := 0
	for _, name := range p.order {
		r := p.reports[name]
		stalled, changed, why := r.watch.check(now, r.passStall())
		if stalled {
			n++
			p.m.stalled.WithLabelValues(name).Set(1)
		} else {
			p.m.stalled.WithLabelValues(name).Set(0)
		}
		switch {
		case changed && stalled:
			r.log.Error("report stalled: "+why+"; the producer is not ready until it polls again", "report", name)
		case changed:
			r.log.Info("report polls again")
		}
	}
	p.stalled.Store(int64(n))
}
