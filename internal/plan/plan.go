package plan

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
)

// User is one COMET source and user: the reports that share one limiter.
type User struct {
	Source string
	Name   string
	// RateLimit is the source's calls a second per user.
	RateLimit float64
	Reports   []Report
}

// Report is one report as configured, with what is known of its size.
type Report struct {
	Name     string
	Interval time.Duration
	// PageSize is the rows a page the configuration asks for.
	PageSize int
	Size     Size
}

// Problems a report can have; each means it cannot (or may not) keep its
// interval.
const (
	// ProblemOverBudget: the user's reports together need more calls a
	// minute than its budget.
	ProblemOverBudget = "over budget"
	// ProblemOverruns: a pass takes longer than the interval, even with
	// the budget to itself.
	ProblemOverruns = "pass longer than interval"
	// ProblemUnknown: the report's page count is not known.
	ProblemUnknown = "pages unknown"
	// ProblemCannotTell: another report of the user has no known page
	// count, so whether the budget suffices cannot be told.
	ProblemCannotTell = "cannot tell"
)

// Result is the plan of one user. Times are in seconds, calls per minute.
type Result struct {
	Source    string  `json:"source"`
	User      string  `json:"user"`
	RateLimit float64 `json:"rate_limit"`
	// Budget is rate_limit × 60 × (1 − comet.LimiterMargin).
	Budget float64 `json:"budget_calls_per_minute"`
	// Need sums the reports' needs, Worst their needs with confirming
	// passes; both count only reports whose pages are known.
	Need  float64 `json:"calls_per_minute"`
	Worst float64 `json:"worst_calls_per_minute"`
	// Factor is Need / Budget: the user's intervals multiplied by it use
	// the whole budget. 0 when some page count is not known.
	Factor float64 `json:"factor,omitempty"`
	// Complete is true when every report's page count is known.
	Complete bool `json:"complete"`
	// OK is true when every report of the user keeps its interval.
	OK      bool           `json:"ok"`
	Reports []ReportResult `json:"reports"`
	// Warnings name every report that cannot keep its interval, and why.
	Warnings []string `json:"warnings,omitempty"`
	// Notes say what is worth knowing but does not stop a report keeping
	// its interval: the worst case over budget, page counts recomputed.
	Notes []string `json:"notes,omitempty"`
}

// ReportResult is the plan of one report.
type ReportResult struct {
	Report          string  `json:"report"`
	IntervalSeconds float64 `json:"interval_seconds"`
	PageSize        int     `json:"page_size"`
	// Pages is the pages a pass makes (0 when not known), From where the
	// number came from, Note how it was derived when recomputed.
	Pages int    `json:"pages"`
	From  Origin `json:"from,omitempty"`
	Note  string `json:"note,omitempty"`
	// Need is pages × 60s / interval; Worst twice that.
	Need  float64 `json:"calls_per_minute"`
	Worst float64 `json:"worst_calls_per_minute"`
	// PassSeconds is the shortest time a pass can take: its pages at the
	// limiter's pace.
	PassSeconds float64 `json:"pass_seconds"`
	// ShortestAloneSeconds is the shortest interval it keeps with the
	// budget to itself; ShortestSharedSeconds the shortest it keeps beside
	// the user's other reports, every interval scaled by Result.Factor (0
	// when some page count of the user is not known).
	ShortestAloneSeconds  float64 `json:"shortest_alone_seconds"`
	ShortestSharedSeconds float64 `json:"shortest_shared_seconds"`
	// OK is true when the report keeps its interval; Problems say why not.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Label names a user as the producer's logs and leases do: source/user.
func (u User) Label() string { return u.Source + "/" + u.Name }

// Label names the user of a Result: source/user.
func (r Result) Label() string { return User{Source: r.Source, Name: r.User}.Label() }

// Budget is the calls a minute a user's reports may make between them:
// COMET's rate_limit a second, less the limiter's margin.
func Budget(rateLimit float64) float64 { return pace(rateLimit) * 60 }

// pace is the calls a second the limiter lets through.
func pace(rateLimit float64) float64 { return rateLimit * (1 - comet.LimiterMargin) }

// Compute plans one user's reports: what each needs, whether together they
// fit the budget, the shortest intervals they could keep, and a warning
// naming every report that cannot keep its interval.
func Compute(u User) Result {
	res := Result{Source: u.Source, User: u.Name, RateLimit: u.RateLimit, Budget: Budget(u.RateLimit), Complete: true}
	perSecond := pace(u.RateLimit)
	floor := config.MinInterval.Seconds()
	var unknown []string
	for _, r := range u.Reports {
		rr := ReportResult{Report: r.Name, IntervalSeconds: r.Interval.Seconds(), PageSize: r.PageSize, From: r.Size.From}
		pages, note, ok := r.Size.PagesAt(r.PageSize)
		if !ok {
			rr.From = ""
			rr.Problems = []string{ProblemUnknown}
			why := r.Size.Unknown
			if why == "" {
				why = "no page count"
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: pages unknown (%s)", r.Name, why))
			unknown = append(unknown, r.Name)
			res.Complete = false
			res.Reports = append(res.Reports, rr)
			continue
		}
		rr.Pages, rr.Note = pages, note
		if note != "" {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: %d pages at page_size %d: %s", r.Name, pages, r.PageSize, note))
		}
		rr.Need = float64(pages) * 60 / rr.IntervalSeconds
		rr.Worst = 2 * rr.Need
		rr.PassSeconds = float64(pages) / perSecond
		rr.ShortestAloneSeconds = max(rr.PassSeconds, floor)
		if rr.PassSeconds > rr.IntervalSeconds {
			rr.Problems = append(rr.Problems, ProblemOverruns)
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: a pass takes at least %s (%d pages at %s calls a second), longer than its interval %s: the next pass follows at once",
				r.Name, Seconds(rr.PassSeconds), pages, Number(perSecond), r.Interval))
		}
		res.Need += rr.Need
		res.Worst += rr.Worst
		res.Reports = append(res.Reports, rr)
	}
	over := res.Need > res.Budget
	if res.Complete {
		res.Factor = res.Need / res.Budget
		for i := range res.Reports {
			rr := &res.Reports[i]
			rr.ShortestSharedSeconds = max(rr.IntervalSeconds*res.Factor, floor)
		}
	}
	var names, shared []string
	for i := range res.Reports {
		rr := &res.Reports[i]
		switch {
		case rr.Pages == 0:
		case over:
			rr.Problems = append([]string{ProblemOverBudget}, rr.Problems...)
		case !res.Complete:
			rr.Problems = append(rr.Problems, ProblemCannotTell)
		}
		rr.OK = len(rr.Problems) == 0
		if rr.Pages > 0 {
			names = append(names, rr.Report)
			shared = append(shared, rr.Report+" "+Seconds(rr.ShortestSharedSeconds))
		}
	}
	switch {
	case over && res.Complete:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the reports need %s calls a minute, over the budget of %s: %s cannot keep their intervals (one limiter slows them all); every interval × %.2f fits: %s",
			res.Label(), Number(res.Need), Number(res.Budget), strings.Join(names, ", "), res.Factor, strings.Join(shared, ", ")))
	case over:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: the reports whose pages are known already need %s calls a minute, over the budget of %s: %s cannot keep their intervals",
			res.Label(), Number(res.Need), Number(res.Budget), strings.Join(names, ", ")))
	case !res.Complete && len(names) > 0:
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: without the pages of %s, whether %s keep their intervals cannot be told",
			res.Label(), strings.Join(unknown, ", "), strings.Join(names, ", ")))
	case res.Worst > res.Budget:
		res.Notes = append(res.Notes, fmt.Sprintf("%s: with confirming passes (while rows churn) the reports may need up to %s calls a minute, over the budget of %s: passes then start late until the churn stops",
			res.Label(), Number(res.Worst), Number(res.Budget)))
	}
	res.OK = true
	for _, rr := range res.Reports {
		res.OK = res.OK && rr.OK
	}
	return res
}

// Number renders calls to one decimal, without a trailing ".0".
func Number(x float64) string {
	s := fmt.Sprintf("%.1f", x)
	return strings.TrimSuffix(s, ".0")
}

// Seconds renders a time in seconds as a Go duration, rounded up (so an
// interval set to it is long enough): to 10ms under a second, to a tenth
// of a second under a minute, to the second above. "-" for 0, a time not
// known.
func Seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	unit := time.Second
	switch {
	case s < 1:
		unit = 10 * time.Millisecond
	case s < 60:
		unit = 100 * time.Millisecond
	}
	// The epsilon keeps an exact 2.1 from rounding up to 2.2.
	n := math.Ceil(s*float64(time.Second)/float64(unit) - 1e-6)
	return (time.Duration(n) * unit).String()
}
