package simulator

import (
	"maps"
	"slices"
	"time"
)

// UserStats counts one user's calls.
type UserStats struct {
	Calls      int `json:"calls"`
	Violations int `json:"violations"`
	// First and Last are the arrival times of the first and last call.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Recent are the first few violations.
	Recent []Violation `json:"recent,omitempty"`
}

// ReportStats counts the requests made with one report's API key, whatever
// they were answered with.
type ReportStats struct {
	Requests int `json:"requests"`
	// BadParams counts requests that lacked a parameter the Params shape
	// requires or gave it another value.
	BadParams int `json:"bad_params"`
	// WrongPath counts requests at the plain path while the TemplatePath
	// shape is on, and at a template path with another template id or while
	// TemplatePath is off.
	WrongPath int `json:"wrong_path"`
	// Pages counts requests by page number.
	Pages map[int]int `json:"pages"`
}

// reportCounts is what ReportStats reports, kept on the report.
type reportCounts struct {
	requests, badParams, wrongPath int
	pages                          map[int]int
}

// Stats is what the simulator counted.
type Stats struct {
	Users map[string]UserStats `json:"users"`
	// Violations is the total over all users.
	Violations int `json:"violations"`
	// Refused counts calls with a wrong key, a revoked report or a bad page size.
	Refused int `json:"refused"`
	// Reports has the counts of every served report, by name.
	Reports map[string]ReportStats `json:"reports"`
}

// Stats returns the counts so far.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Users: map[string]UserStats{}, Refused: s.refused, Reports: map[string]ReportStats{}}
	for u, w := range s.users {
		st.Users[u] = UserStats{Calls: w.calls, Violations: w.violations, First: w.first, Last: w.last, Recent: slices.Clone(w.recent)}
		st.Violations += w.violations
	}
	for name, r := range s.reports {
		c := r.stats
		pages := maps.Clone(c.pages)
		if pages == nil {
			pages = map[int]int{}
		}
		st.Reports[name] = ReportStats{Requests: c.requests, BadParams: c.badParams, WrongPath: c.wrongPath, Pages: pages}
	}
	return st
}

// ResetStats forgets every call counted so far.
func (s *Simulator) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = map[string]*window{}
	s.refused = 0
	for _, r := range s.reports {
		r.stats = reportCounts{}
	}
}
