package simulator

import "time"

// window counts one user's calls over the last second, the strictest reading
// of "at most N calls a second": a call is a violation when N calls of the
// same user already arrived in the second before it. Refused calls count too,
// as they would at COMET.
type window struct {
	times       []time.Time // ring of the last N arrivals
	next        int
	calls       int
	violations  int
	first, last time.Time
	// recent are the last few violations, for a test's message.
	recent []Violation
}

// Violation is one call that broke the limit: it arrived At, Span after the
// call N calls before it.
type Violation struct {
	At   time.Time     `json:"at"`
	Span time.Duration `json:"span"`
}

// arrive records a call at t and reports whether it breaks the limit: it
// is the limit+1th call within a second (less noise, see
// Config.ArrivalNoise).
func (w *window) arrive(t time.Time, limit int, noise time.Duration) bool {
	w.calls++
	if w.first.IsZero() {
		w.first = t
	}
	w.last = t
	if limit <= 0 {
		return false
	}
	if len(w.times) < limit {
		w.times = append(w.times, t)
		return false
	}
	oldest := w.times[w.next]
	w.times[w.next] = t
	w.next = (w.next + 1) % limit
	if t.Sub(oldest) < time.Second-noise {
		w.violations++
		if len(w.recent) < 10 {
			w.recent = append(w.recent, Violation{At: t, Span: t.Sub(oldest)})
		}
		return true
	}
	return false
}
