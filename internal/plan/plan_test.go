package plan

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// known is a page count measured at page 0 at the size asked.
func known(pages, pageSize int) Size {
	return Size{From: FromPage0, Pages: pages, Served: pageSize}
}

func report(name string, interval time.Duration, pages int) Report {
	return Report{Name: name, Interval: interval, PageSize: 100, Size: known(pages, 100)}
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-6 }

func TestBudget(t *testing.T) {
	// 10 calls a second, paced 4% under: 9.6 a second.
	for rate, want := range map[float64]float64{10: 576, 1: 57.6, 200: 11520} {
		if got := Budget(rate); !near(got, want) {
			t.Errorf("Budget(%v) = %v, want %v", rate, got, want)
		}
	}
}

// want is what a test expects of one report.
type want struct {
	pages             int
	need, worst, pass float64
	alone, shared     float64
	problems          []string
	ok                bool
	from              Origin
	notePart          string
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name      string
		user      User
		ok        bool
		need      float64
		worst     float64
		factor    float64
		reports   []want
		warnings  []string // each a substring of one warning, in order
		notes     []string
		noWarning bool
	}{
		{
			name: "three reports that fit",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", time.Minute, 25),   // 25 calls a minute
				report("matches", 10*time.Second, 3), // 18
				report("fees", time.Second, 1),       // 60
			}},
			ok: true, need: 103, worst: 206, factor: 103.0 / 576,
			reports: []want{
				{pages: 25, need: 25, worst: 50, pass: 25 / 9.6, alone: 25 / 9.6, shared: 60 * 103.0 / 576, ok: true, from: FromPage0},
				{pages: 3, need: 18, worst: 36, pass: 3 / 9.6, alone: 1, shared: 10 * 103.0 / 576, ok: true, from: FromPage0},
				// 1 × 103/576 s is under a second: floored at config.MinInterval.
				{pages: 1, need: 60, worst: 120, pass: 1 / 9.6, alone: 1, shared: 1, ok: true, from: FromPage0},
			},
			noWarning: true,
		},
		{
			name: "together over budget",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", 4*time.Second, 25), // 375: fits alone, a pass takes 2.6s
				report("matches", time.Second, 3),    // 180
				report("fees", time.Second, 1),       // 60
			}},
			ok: false, need: 615, worst: 1230, factor: 615.0 / 576,
			reports: []want{
				{pages: 25, need: 375, worst: 750, pass: 25 / 9.6, alone: 25 / 9.6, shared: 4 * 615.0 / 576, problems: []string{ProblemOverBudget}, from: FromPage0},
				{pages: 3, need: 180, worst: 360, pass: 3 / 9.6, alone: 1, shared: 615.0 / 576, problems: []string{ProblemOverBudget}, from: FromPage0},
				{pages: 1, need: 60, worst: 120, pass: 1 / 9.6, alone: 1, shared: 615.0 / 576, problems: []string{ProblemOverBudget}, from: FromPage0},
			},
			warnings: []string{"faw/federation: the reports need 615 calls a minute, over the budget of 576: persons, matches, fees cannot keep their intervals (one limiter slows them all); every interval × 1.07 fits: persons 4.3s, matches 1.1s, fees 1.1s"},
		},
		{
			name: "a pass longer than its interval",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", 3*time.Second, 30), // a pass takes 30/9.6 = 3.125s
			}},
			ok: false, need: 600, worst: 1200, factor: 600.0 / 576,
			reports: []want{
				{pages: 30, need: 600, worst: 1200, pass: 3.125, alone: 3.125, shared: 3.125, problems: []string{ProblemOverBudget, ProblemOverruns}, from: FromPage0},
			},
			warnings: []string{
				"persons: a pass takes at least 3.2s (30 pages at 9.6 calls a second), longer than its interval 3s: the next pass follows at once",
				"faw/federation: the reports need 600 calls a minute, over the budget of 576: persons cannot keep",
			},
		},
		{
			name: "a capped page size changes the page count",
			user: User{Source: "cymru", Name: "default", RateLimit: 10, Reports: []Report{
				// 1200 rows asked at 1000 a page but served at 500: 3 pages, not 2.
				{Name: "players", Interval: 10 * time.Second, PageSize: 1000, Size: Size{From: FromPage0, Pages: 3, Served: 500, Capped: true, Rows: 1200, RowsKnown: true}},
				// The producer's last pass saw the cap at 500; page_size is now 200: 6 pages.
				{Name: "clubs", Interval: time.Minute, PageSize: 200, Size: Size{From: FromLastPass, Pages: 3, Served: 500, Capped: true, Rows: 1200, RowsKnown: true}},
			}},
			ok: true, need: 18 + 6, worst: 48, factor: 24.0 / 576,
			reports: []want{
				{pages: 3, need: 18, worst: 36, pass: 3 / 9.6, alone: 1, shared: 1, ok: true, from: FromPage0},
				{pages: 6, need: 6, worst: 12, pass: 6 / 9.6, alone: 1, shared: 60 * 24.0 / 576, ok: true, from: FromLastPass, notePart: "1200 rows at 200 a page (last pass had 3 pages at 500)"},
			},
			notes:     []string{"clubs: 6 pages at page_size 200: 1200 rows at 200 a page"},
			noWarning: true,
		},
		{
			name: "confirming passes double the worst case",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", 4*time.Second, 20), // 300
				report("matches", 3*time.Second, 5),  // 100
			}},
			ok: true, need: 400, worst: 800, factor: 400.0 / 576,
			reports: []want{
				{pages: 20, need: 300, worst: 600, pass: 20 / 9.6, alone: 20 / 9.6, shared: 4 * 400.0 / 576, ok: true, from: FromPage0},
				{pages: 5, need: 100, worst: 200, pass: 5 / 9.6, alone: 1, shared: 3 * 400.0 / 576, ok: true, from: FromPage0},
			},
			notes:     []string{"faw/federation: with confirming passes (while rows churn) the reports may need up to 800 calls a minute, over the budget of 576"},
			noWarning: true,
		},
		{
			name: "an unknown page count",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", time.Minute, 25),
				{Name: "matches", Interval: time.Minute, PageSize: 100, Size: Size{Unknown: "page 0: HTTP 503"}},
			}},
			ok: false, need: 25, worst: 50,
			reports: []want{
				{pages: 25, need: 25, worst: 50, pass: 25 / 9.6, alone: 25 / 9.6, problems: []string{ProblemCannotTell}, from: FromPage0},
				{problems: []string{ProblemUnknown}},
			},
			warnings: []string{"matches: pages unknown (page 0: HTTP 503)", "faw/federation: without the pages of matches, whether persons keep their intervals cannot be told"},
		},
		{
			name: "an unknown page count beside reports already over budget",
			user: User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{
				report("persons", time.Second, 10), // 600
				{Name: "matches", Interval: time.Minute, PageSize: 100},
			}},
			ok: false, need: 600, worst: 1200,
			reports: []want{
				{pages: 10, need: 600, worst: 1200, pass: 10 / 9.6, alone: 10 / 9.6, problems: []string{ProblemOverBudget, ProblemOverruns}, from: FromPage0},
				{problems: []string{ProblemUnknown}},
			},
			warnings: []string{"persons: a pass takes at least 1.1s", "matches: pages unknown (no page count)", "the reports whose pages are known already need 600 calls a minute, over the budget of 576: persons cannot keep"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Compute(tt.user)
			if res.OK != tt.ok {
				t.Errorf("OK = %v, want %v (warnings %q)", res.OK, tt.ok, res.Warnings)
			}
			if !near(res.Budget, 576) && tt.user.RateLimit == 10 {
				t.Errorf("budget %v calls a minute, want 576", res.Budget)
			}
			if !near(res.Need, tt.need) || !near(res.Worst, tt.worst) || !near(res.Factor, tt.factor) {
				t.Errorf("need %v, worst %v, factor %v; want %v, %v, %v", res.Need, res.Worst, res.Factor, tt.need, tt.worst, tt.factor)
			}
			if len(res.Reports) != len(tt.reports) {
				t.Fatalf("%d reports, want %d", len(res.Reports), len(tt.reports))
			}
			for i, w := range tt.reports {
				got := res.Reports[i]
				if got.Pages != w.pages || got.From != w.from {
					t.Errorf("%s: %d pages from %q, want %d from %q", got.Report, got.Pages, got.From, w.pages, w.from)
				}
				if !near(got.Need, w.need) || !near(got.Worst, w.worst) {
					t.Errorf("%s: %v calls a minute, %v at worst; want %v, %v", got.Report, got.Need, got.Worst, w.need, w.worst)
				}
				if !near(got.PassSeconds, w.pass) || !near(got.ShortestAloneSeconds, w.alone) || !near(got.ShortestSharedSeconds, w.shared) {
					t.Errorf("%s: pass %vs, shortest alone %vs, shared %vs; want %v, %v, %v", got.Report, got.PassSeconds, got.ShortestAloneSeconds, got.ShortestSharedSeconds, w.pass, w.alone, w.shared)
				}
				if got.OK != w.ok || !slices.Equal(got.Problems, w.problems) {
					t.Errorf("%s: ok %v, problems %q; want %v, %q", got.Report, got.OK, got.Problems, w.ok, w.problems)
				}
				if !strings.Contains(got.Note, w.notePart) || (w.notePart == "" && got.Note != "") {
					t.Errorf("%s: note %q, want it to say %q", got.Report, got.Note, w.notePart)
				}
			}
			if tt.noWarning && len(res.Warnings) > 0 {
				t.Errorf("warnings %q, want none", res.Warnings)
			}
			if len(tt.warnings) > 0 && len(res.Warnings) != len(tt.warnings) {
				t.Errorf("%d warnings %q, want %d", len(res.Warnings), res.Warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if i < len(res.Warnings) && !strings.Contains(res.Warnings[i], w) {
					t.Errorf("warning %d is %q, want it to say %q", i, res.Warnings[i], w)
				}
			}
			if len(res.Notes) != len(tt.notes) {
				t.Errorf("notes %q, want %d", res.Notes, len(tt.notes))
			}
			for i, w := range tt.notes {
				if i < len(res.Notes) && !strings.Contains(res.Notes[i], w) {
					t.Errorf("note %d is %q, want it to say %q", i, res.Notes[i], w)
				}
			}
		})
	}
}

func TestPagesAt(t *testing.T) {
	tests := []struct {
		name     string
		size     Size
		pageSize int
		pages    int
		ok       bool
		note     bool
	}{
		{"nothing known", Size{Unknown: "no key"}, 100, 0, false, false},
		{"page 0 at the size asked", Size{From: FromPage0, Pages: 13, Served: 100, Rows: 1250, RowsKnown: true}, 100, 13, true, false},
		{"page 0 capped", Size{From: FromPage0, Pages: 3, Served: 500, Capped: true, Rows: 1200, RowsKnown: true}, 1000, 3, true, false},
		{"last pass, size not known", Size{From: FromLastPass, Pages: 7}, 1000, 7, true, false},
		{"last pass capped, more asked: still the cap", Size{From: FromLastPass, Pages: 3, Served: 500, Capped: true}, 800, 3, true, false},
		{"last pass capped, fewer asked than the cap", Size{From: FromLastPass, Pages: 3, Served: 500, Capped: true, Rows: 1200, RowsKnown: true}, 100, 12, true, true},
		{"last pass, page_size lowered", Size{From: FromLastPass, Pages: 2, Served: 1000, Rows: 1200, RowsKnown: true}, 100, 12, true, true},
		{"last pass, page_size lowered, rows not known", Size{From: FromLastPass, Pages: 2, Served: 1000}, 100, 0, false, false},
		// COMET may cap anywhere above what it served: ask page 0.
		{"last pass, page_size raised", Size{From: FromLastPass, Pages: 12, Served: 100, Rows: 1200, RowsKnown: true}, 1000, 0, false, false},
		{"an empty report is one page", Size{From: FromLastPass, Pages: 1, Served: 1000, Rows: 0, RowsKnown: true}, 10, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pages, note, ok := tt.size.PagesAt(tt.pageSize)
			if pages != tt.pages || ok != tt.ok || (note != "") != tt.note {
				t.Errorf("PagesAt(%d) = %d, %q, %v; want %d pages, ok %v, a note %v", tt.pageSize, pages, note, ok, tt.pages, tt.ok, tt.note)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for s, want := range map[float64]string{0: "-", 0.104: "110ms", 0.5: "500ms", 1: "1s", 2.1: "2.1s", 2.604: "2.7s", 59.96: "1m0s", 60: "1m0s", 64.3: "1m5s", 3600: "1h0m0s"} {
		if got := Seconds(s); got != want {
			t.Errorf("Seconds(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	Print(&b, []Result{
		Compute(User{Source: "faw", Name: "federation", RateLimit: 10, Reports: []Report{report("persons", 4*time.Second, 25), report("matches", time.Second, 3), report("fees", time.Second, 1)}}),
		Compute(User{Source: "faw", Name: "finance", RateLimit: 10, Reports: []Report{report("payments", time.Minute, 4)}}),
	})
	out := b.String()
	for _, want := range []string{
		"faw/federation: rate_limit 10/s less 4% = budget 576 calls/min; need 615 (107%), up to 1230 with confirming passes: CANNOT KEEP THEIR INTERVALS: persons, matches, fees",
		"REPORT   PAGES  FROM        INTERVAL  CALLS/MIN  WITH CHURN  PASS AT BEST  SHORTEST ALONE  SHORTEST SHARED  STATE",
		"persons  25     page 0 now  4s        375        750         2.7s          2.7s            4.3s             OVER BUDGET",
		"WARNING: faw/federation: the reports need 615 calls a minute",
		"faw/finance: rate_limit 10/s less 4% = budget 576 calls/min; need 4 (1%), up to 8 with confirming passes: ok",
		"payments  4      page 0 now  1m0s      4          8           420ms         1s              1s               ok",
		SharedRule,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}
