package producer

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
)

// failedEvery is how often a report that keeps failing says so again on the
// stream.
const failedEvery = time.Hour

// failing records a pass that ended with an error and publishes
// comet.report.failed when the report starts failing, then at most once
// every failedEvery while it goes on. A refused key has its own event
// (unavailable), and a lost lease is not the report's failure.
func (ps *pass) failing(ctx context.Context, err error) error {
	r := ps.r
	if errors.Is(err, comet.ErrReportUnavailable) || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrFenced) {
		return nil
	}
	st := &r.state
	now := r.p.cfg.Now().UTC()
	if st.FailingSince.IsZero() {
		st.FailingSince, st.FailedAttempts, st.FailedPublished = now, 0, time.Time{}
	}
	st.FailedAttempts++
	if !st.FailedPublished.IsZero() && now.Sub(st.FailedPublished) < failedEvery {
		return nil
	}
	name := r.cfg.Name
	id := event.ID(name, string(event.KindFailed), st.FailingSince.Format(time.RFC3339Nano), strconv.Itoa(st.FailedAttempts))
	data := event.Failed{Report: name, Since: st.FailingSince, Attempts: st.FailedAttempts, Error: err.Error()}
	if perr := ps.report(ctx, event.KindFailed, id, data); perr != nil {
		return perr
	}
	st.FailedPublished = now
	r.log.Error("report failing: its passes end in errors; the stream says so (comet.report.failed)", "since", st.FailingSince, "attempts", st.FailedAttempts, "err", err)
	return nil
}

// recoveredFromFailing clears the failing state after a pass that succeeded.
func (r *reporter) recoveredFromFailing() {
	st := &r.state
	if st.FailingSince.IsZero() {
		return
	}
	r.log.Info("report recovered: passes succeed again", "failing_since", st.FailingSince, "failed_passes", st.FailedAttempts)
	st.FailingSince, st.FailedAttempts, st.FailedPublished = time.Time{}, 0, time.Time{}
}
