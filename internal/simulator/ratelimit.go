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
}

// arrive records a call at t and reports whether it breaks the limit.
func (w *window) arrive(t time.Time, limit int) bool {
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
	if t.Sub(oldest) < time.Second {
		w.violations++
		return true
	}
	return false
}

// UserStats counts one user's calls.
type UserStats struct {
	Calls      int `json:"calls"`
	Violations int `json:"violations"`
	// First and Last are the arrival times of the first and last call.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Stats is what the simulator counted.
type Stats struct {
	Users map[string]UserStats `json:"users"`
	// Violations is the total over all users.
	Violations int `json:"violations"`
	// Refused counts calls with a wrong key, a revoked report or a bad page size.
	Refused int `json:"refused"`
}

// Stats returns the counts so far.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Users: map[string]UserStats{}, Refused: s.refused}
	for u, w := range s.users {
		st.Users[u] = UserStats{Calls: w.calls, Violations: w.violations, First: w.first, Last: w.last}
		st.Violations += w.violations
	}
	return st
}

// ResetStats forgets every call counted so far.
func (s *Simulator) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = map[string]*window{}
	s.refused = 0
}
