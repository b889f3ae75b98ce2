package comet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

func newClient(t testing.TB, base, key string, mod func(*Config)) (*Client, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	cfg := Config{
		BaseURL: base, APIKey: key, Limiter: NewLimiter(1000),
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxRetries: 2, Backoff: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func TestURL(t *testing.T) {
	for _, base := range []string{"https://comet.faw.cymru", "https://comet.faw.cymru/"} {
		c, _ := newClient(t, base, "k y/+", nil)
		want := "https://comet.faw.cymru/data-backend/api/public/areports/run/3/1000/?API_KEY=k+y%2F%2B"
		if got := c.pageURL(3, 1000, url.QueryEscape("k y/+")); got != want {
			t.Errorf("base %q: URL %q, want %q", base, got, want)
		}
		if got := c.RedactedURL(3, 1000); strings.Contains(got, "k+y") || !strings.Contains(got, "API_KEY=REDACTED") {
			t.Errorf("redacted URL %q", got)
		}
	}
	c, _ := newClient(t, "https://latam.analyticom.de", "key", func(c *Config) {
		c.Path = "/data-backend/api/public/areports/run/4711/{page}/{size}/"
		c.Params = map[string]string{"registrationStatus": "label.confirmed", "from": "2026-01-01", "a b": "x&y"}
	})
	want := "https://latam.analyticom.de/data-backend/api/public/areports/run/4711/2/500/?API_KEY=REDACTED&a+b=x%26y&from=2026-01-01&registrationStatus=label.confirmed"
	if got := c.RedactedURL(2, 500); got != want {
		t.Errorf("templated URL\n got %s\nwant %s", got, want)
	}
}

func TestValidatePathAndParams(t *testing.T) {
	for path, ok := range map[string]bool{
		DefaultPath: true,
		"/data-backend/api/public/areports/run/4711/{page}/{size}/": true,
		"/x/{size}/{page}":         true,
		"x/{page}/{size}/":         false,
		"/x/{page}/":               false,
		"/x/{page}/{page}/{size}/": false,
		"/x/{page}/{size}/?a=1":    false,
		"/x/{page}/{size}/#frag":   false,
		"/x/{id}/{page}/{size}/":   false,
		"/x/{page}/{size}/ y":      false,
	} {
		if err := ValidatePath(path); (err == nil) != ok {
			t.Errorf("ValidatePath(%q) = %v, want ok %v", path, err, ok)
		}
	}
	for _, name := range []string{"API_KEY", "api_key", ""} {
		if err := ValidateParams(map[string]string{name: "x"}); err == nil {
			t.Errorf("ValidateParams accepted a parameter named %q", name)
		}
	}
	if err := ValidateParams(map[string]string{"registrationStatus": "label.confirmed"}); err != nil {
		t.Error(err)
	}
	if _, err := New(Config{BaseURL: "https://x", APIKey: "k", Limiter: NewLimiter(1), Path: "/no/placeholders/"}); err == nil {
		t.Error("New accepted a path without {page} and {size}")
	}
}

// TestFailureClasses drives every failure class through real HTTP and checks
// the class, the status and that the key appears in no error or log line.
func TestFailureClasses(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 60}}})
	key := sim.Key("p")
	closed := func() string { // an address nobody listens on
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/run/0/"):
			http.Redirect(w, r, "https://elsewhere.example/x?API_KEY="+r.URL.Query().Get("API_KEY"), http.StatusFound)
		case strings.Contains(r.URL.Path, "/run/1/"):
			fmt.Fprintf(w, `{"columnTypes":["NUMBER"],"columnNames":["n"],"columnKeys":["id"],"results":[],"totalSize":0,"page":2,"pageSize":7,"lastPage":0,"apiKeyRequestURL":"%s"}`, r.URL.String())
		default:
			w.Write(bytes.Repeat([]byte("x"), 4096))
		}
	}))
	defer hostile.Close()

	tests := []struct {
		name     string
		setup    func()
		base     string
		key      string
		page     int
		mod      func(*Config)
		class    error
		status   int
		requests int // expected simulator calls, 0 to skip
		cause    error
	}{
		{name: "wrong key", key: "not-" + key, class: ErrReportUnavailable, status: 401},
		{name: "revoked 403", setup: func() { sim.Revoke("p", 403) }, class: ErrReportUnavailable, status: 403},
		{name: "deleted 404", setup: func() { sim.Revoke("p", 404) }, class: ErrReportUnavailable, status: 404},
		{name: "gone 410", setup: func() { sim.Revoke("p", 410) }, class: ErrReportUnavailable, status: 410},
		{name: "429 persists", setup: func() { sim.Inject("p", simulator.Fault{Status: 429, RetryAfter: "0", Count: 3}) }, class: ErrRateLimited, status: 429, requests: 3},
		{name: "500 persists", setup: func() { sim.Inject("p", simulator.Fault{Status: 500, Count: 3}) }, class: ErrTransient, status: 500, requests: 3},
		{name: "503 persists", setup: func() { sim.Inject("p", simulator.Fault{Status: 503, RetryAfter: "0", Count: 3}) }, class: ErrTransient, status: 503, requests: 3},
		{name: "truncated body", setup: func() { sim.Inject("p", simulator.Fault{Count: 3}) }, class: ErrTransient, requests: 3},
		{name: "timeout", setup: func() { sim.SetMisbehaviour(300*time.Millisecond, 0, 0) }, mod: func(c *Config) { c.Timeout = 50 * time.Millisecond }, class: ErrTransient, cause: context.DeadlineExceeded},
		{name: "connection refused", base: closed, class: ErrTransient},
		{name: "redirect", base: hostile.URL, class: ErrInvalidResponse, status: 302},
		{name: "page echo", base: hostile.URL, page: 1, class: ErrInvalidResponse},
		{name: "body too large", base: hostile.URL, page: 2, mod: func(c *Config) { c.MaxBodyBytes = 1024 }, class: ErrInvalidResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer sim.Restore("p")
			defer sim.SetMisbehaviour(0, 0, 0)
			if tt.setup != nil {
				tt.setup()
			}
			b, k := base, key
			if tt.base != "" {
				b = tt.base
			}
			if tt.key != "" {
				k = tt.key
			}
			c, logs := newClient(t, b, k, tt.mod)
			before := sim.Stats().Users["default"].Calls
			size := 25
			if tt.page == 1 {
				size = 7
			}
			_, err := c.FetchPage(context.Background(), tt.page, size)
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, tt.class) {
				t.Fatalf("error %v (%T), want class %v", err, err, tt.class)
			}
			if tt.status != 0 && ce.Status != tt.status {
				t.Errorf("status %d, want %d", ce.Status, tt.status)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("error %v does not wrap %v", err, tt.cause)
			}
			if tt.requests != 0 {
				if got := sim.Stats().Users["default"].Calls - before; got != tt.requests {
					t.Errorf("%d requests reached COMET, want %d", got, tt.requests)
				}
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), logs.String()} {
				if strings.Contains(text, k) {
					t.Errorf("API key leaked: %s", text)
				}
			}
		})
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 10}}})
	sim.Inject("p", simulator.Fault{Status: 500, Count: 1})
	sim.Inject("p", simulator.Fault{Count: 1}) // truncated
	c, logs := newClient(t, base, sim.Key("p"), nil)
	p, err := c.FetchPage(context.Background(), 0, 25)
	if err != nil || p.Len() != 10 {
		t.Fatalf("page %v, err %v", p, err)
	}
	if calls := sim.Stats().Users["default"].Calls; calls != 3 {
		t.Errorf("%d calls, want 3 (two failures, one success)", calls)
	}
	if !strings.Contains(logs.String(), "retrying") || strings.Contains(logs.String(), sim.Key("p")) {
		t.Errorf("logs should mention the retries without the key: %s", logs)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 10}}})
	sim.Inject("p", simulator.Fault{Status: 429, RetryAfter: "1", Count: 1})
	c, _ := newClient(t, base, sim.Key("p"), nil)
	start := time.Now()
	if _, err := c.FetchPage(context.Background(), 0, 25); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %s, before the 1s Retry-After", waited)
	}
}

func TestFetchWholeReportInPageOrder(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "m", Kind: "matches", Rows: 185}}})
	want := sim.Rows("m")
	for _, hint := range []int{0, 3, 8, 12} {
		t.Run(fmt.Sprintf("expect %d pages", hint), func(t *testing.T) {
			c, _ := newClient(t, base, sim.Key("m"), func(c *Config) { c.Concurrency = 4 })
			var got []event.Row
			sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25, ExpectPages: hint}, func(p *Page) error {
				for i := 0; i < p.Len(); i++ {
					row := event.Row{}
					for j, col := range p.Columns {
						row[col.Key] = p.Row(i)[j]
					}
					got = append(got, row)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !sum.Complete || !sum.TotalSizeStable || !sum.RowCountsMatch || sum.Pages != 8 || sum.Rows != 185 || sum.TotalSize != 185 || sum.LastPage != 7 {
				t.Errorf("summary %+v", sum)
			}
			// Speculative pages past the end may be cancelled before they
			// are sent once page 0 tells the real count.
			if sum.Requests < 8 || sum.Requests > max(hint, 8, 4) {
				t.Errorf("%d requests, want 8..%d", sum.Requests, max(hint, 8, 4))
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				for k, v := range want[i] {
					if !got[i][k].Equal(v) {
						t.Fatalf("row %d column %s = %+v, want %+v", i, k, got[i][k], v)
					}
				}
			}
		})
	}
}

func TestFetchNoticesChangesDuringPass(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 100}}})
	sim.OnPage(func(_ string, page int) {
		if page == 1 {
			sim.Insert("p", 1, 0)
		}
	})
	c, _ := newClient(t, base, sim.Key("p"), func(c *Config) { c.Concurrency = 1 })
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.TotalSizeStable {
		t.Errorf("an insert during the pass went unnoticed: %+v", sum)
	}
}

func TestFetchStopsAtFailedPage(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 100}}})
	sim.OnPage(func(_ string, page int) {
		if page == 1 {
			sim.Revoke("p", 410)
		}
	})
	c, _ := newClient(t, base, sim.Key("p"), func(c *Config) { c.Concurrency = 1 })
	pages := 0
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { pages++; return nil })
	if !errors.Is(err, ErrReportUnavailable) {
		t.Fatalf("error %v, want unavailable", err)
	}
	if sum.Complete || pages != 2 || sum.Pages != 2 {
		t.Errorf("summary %+v after %d pages, want incomplete after 2", sum, pages)
	}
}

// TestSharedLimiterNoViolations runs eight reports of one COMET user at once
// through one limiter, and a ninth report of another user beside them.
func TestSharedLimiterNoViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about four seconds of rate-limited requests")
	}
	specs := []simulator.ReportSpec{{Name: "other", Kind: "fees", Rows: 100, User: "finance"}}
	for i := range 8 {
		specs = append(specs, simulator.ReportSpec{Name: fmt.Sprintf("r%d", i), Kind: "persons", Rows: 100, User: "federation"})
	}
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 1, Reports: specs, RateLimit: 10})
	shared, own := NewLimiter(10), NewLimiter(10)
	var wg sync.WaitGroup
	done := make([]time.Duration, len(specs))
	errs := make([]error, len(specs))
	start := time.Now()
	for i, s := range specs {
		lim := shared
		if s.User == "finance" {
			lim = own
		}
		c, _ := newClient(t, base, sim.Key(s.Name), func(c *Config) { c.Limiter = lim })
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { return nil })
			done[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("report %s: %v", specs[i].Name, err)
		}
	}
	st := sim.Stats()
	if st.Violations != 0 {
		t.Errorf("%d rate-limit violations: %+v", st.Violations, st.Users)
	}
	if st.Users["federation"].Calls != 32 || st.Users["finance"].Calls != 4 {
		t.Errorf("calls %+v, want 32 and 4", st.Users)
	}
	// 32 federation calls need at least 3.1s at 10/s; the other user's four
	// need 0.3s. Had the users shared a budget, "other" would finish late.
	slowest := time.Duration(0)
	for _, d := range done[1:] {
		slowest = max(slowest, d)
	}
	if done[0] > slowest/2 {
		t.Errorf("the other user's report took %s, the shared user's %s: it was slowed down", done[0], slowest)
	}
}

func simulatedPage(t testing.TB, rows int) []byte {
	sim, err := simulator.New(simulator.Config{Seed: 1, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: rows}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", fmt.Sprintf("/data-backend/api/public/areports/run/0/%d/?API_KEY=%s", rows, sim.Key("p")), nil)
	sim.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("simulator answered %d", rec.Code)
	}
	return rec.Body.Bytes()
}

// pageRecorder wraps a handler and counts requests by page number.
type pageRecorder struct {
	mu    sync.Mutex
	pages map[int]int
	next  http.Handler
	// rewrite, when set, may change the request before it is served.
	rewrite func(*http.Request)
}

func (p *pageRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) >= 2 {
		var n int
		fmt.Sscan(parts[len(parts)-2], &n)
		p.mu.Lock()
		if p.pages == nil {
			p.pages = map[int]int{}
		}
		p.pages[n]++
		p.mu.Unlock()
	}
	if p.rewrite != nil {
		p.rewrite(r)
	}
	p.next.ServeHTTP(w, r)
}

func (p *pageRecorder) counts() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]int{}
	for k, v := range p.pages {
		out[k] = v
	}
	return out
}

// capped serves a simulator the way deployments that cap the page size do:
// asked for more than max rows, they serve max and say so in pageSize.
func capped(sim *simulator.Simulator, maxRows int) *pageRecorder {
	return &pageRecorder{next: sim.Handler(), rewrite: func(r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		for i := len(parts) - 1; i >= 0; i-- {
			if n, err := fmt.Sscan(parts[i], new(int)); err == nil && n == 1 && parts[i] != "" {
				var size int
				fmt.Sscan(parts[i], &size)
				parts[i] = fmt.Sprint(min(size, maxRows))
				break
			}
		}
		r.URL.Path = strings.Join(parts, "/")
	}}
}

func collectRows(p *Page, into *[]event.Row) {
	for i := 0; i < p.Len(); i++ {
		row := event.Row{}
		for j, col := range p.Columns {
			row[col.Key] = p.Row(i)[j]
		}
		*into = append(*into, row)
	}
}

func TestFetchPagesByTheServedPageSize(t *testing.T) {
	sim, err := simulator.New(simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "m", Kind: "matches", Rows: 95}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := capped(sim, 10)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, _ := newClient(t, srv.URL, sim.Key("m"), func(c *Config) { c.Concurrency = 4 })
	var got []event.Row
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(p *Page) error { collectRows(p, &got); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || !sum.RowCountsMatch || !sum.TotalSizeStable || sum.PageSize != 10 || sum.Pages != 10 || sum.Rows != 95 || sum.LastPage != 9 {
		t.Fatalf("summary %+v", sum)
	}
	want := sim.Rows("m")
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if testenvCanonical(got[i]) != testenvCanonical(want[i]) {
			t.Fatalf("row %d = %v, want %v", i, got[i], want[i])
		}
	}
	// The next pass knows the served size: pages sent ahead ask for it, and
	// nothing is requested twice.
	rec.mu.Lock()
	rec.pages = nil
	rec.mu.Unlock()
	sum, err = c.Fetch(context.Background(), FetchOptions{PageSize: 25, ServedSize: 10, ExpectPages: 10}, func(*Page) error { return nil })
	if err != nil || sum.Rows != 95 || sum.Requests != 10 {
		t.Fatalf("second pass: %+v, %v; want 10 requests", sum, err)
	}
	for p, n := range rec.counts() {
		if n != 1 {
			t.Errorf("page %d requested %d times", p, n)
		}
	}
}

func testenvCanonical(r event.Row) string {
	s := ""
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s += k + "=" + string(r[k].AppendJSON(nil)) + ";"
	}
	return s
}

// TestFailingCometCostsOnePagesRetries: before page 0 has succeeded, pages
// sent ahead make their first attempt and are not retried.
func TestFailingCometCostsOnePagesRetries(t *testing.T) {
	sim, err := simulator.New(simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 200}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pageRecorder{next: sim.Handler()}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	sim.Inject("p", simulator.Fault{Status: 503, RetryAfter: "0", Count: 1000})
	c, _ := newClient(t, srv.URL, sim.Key("p"), func(c *Config) { c.MaxRetries = 3; c.Concurrency = 8 })
	_, err = c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { return nil })
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("error %v, want transient", err)
	}
	counts := rec.counts()
	if counts[0] != 4 {
		t.Errorf("page 0 requested %d times, want 4 (one attempt and three retries)", counts[0])
	}
	for p, n := range counts {
		if p != 0 && n > 1 {
			t.Errorf("page %d, sent ahead, requested %d times before page 0 ever succeeded", p, n)
		}
	}

	// A storm that ends: page 0 gets through, then the pages sent ahead
	// retry and the pass completes.
	rec.mu.Lock()
	rec.pages = nil
	rec.mu.Unlock()
	sim2, _ := simulator.New(simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 200}}})
	rec.next = sim2.Handler()
	sim2.Inject("p", simulator.Fault{Status: 503, RetryAfter: "0", Count: 9})
	c2, _ := newClient(t, srv.URL, sim2.Key("p"), func(c *Config) { c.MaxRetries = 6; c.Concurrency = 8 })
	sum, err := c2.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { return nil })
	if err != nil || !sum.Complete || sum.Rows != 200 {
		t.Fatalf("after the storm: %+v, %v", sum, err)
	}
}

func TestNotJSONSaysWhatCameBack(t *testing.T) {
	const key = "s3cret-api-key-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if strings.Contains(r.URL.Path, "/run/1/") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>COMET   maintenance</title></head>\n<body>Back soon. <a href=\"/?API_KEY=%s\">retry</a></body></html>", r.URL.Query().Get("API_KEY"))
	}))
	defer srv.Close()
	c, logs := newClient(t, srv.URL, key, nil)
	for page, want := range map[int]string{0: "HTTP 200 with a body that is not JSON", 1: "HTTP 503"} {
		_, err := c.FetchPage(context.Background(), page, 25)
		if !errors.Is(err, ErrTransient) {
			t.Fatalf("page %d: error %v, want transient", page, err)
		}
		msg := err.Error()
		for _, s := range []string{want, "text/html", "<!DOCTYPE html> <html><head><title>COMET maintenance"} {
			if !strings.Contains(msg, s) {
				t.Errorf("page %d: error %q does not say %q", page, msg, s)
			}
		}
		if strings.Contains(msg, key) || strings.Contains(logs.String(), key) {
			t.Errorf("the key leaked: %s", msg)
		}
	}
	// The key cut off at the end of what is shown is not shown in part.
	r := newRedactor(key)
	if got := r.head("see /?API_KEY=" + key[:12]); strings.Contains(got, key[:12]) {
		t.Errorf("head kept a key prefix: %q", got)
	}
}

// TestEscapedKeyNotShown: a server that quotes the key HTML-escaped,
// JSON-escaped or URL-encoded in lower case has it cut out of errors and
// logs like the key as sent.
func TestEscapedKeyNotShown(t *testing.T) {
	const key = `k/ey+Odd=9&x<"'>`
	jsonStd, _ := json.Marshal(key) // Go's: \u0026, \u003c, \u003e
	bodies := []struct{ contentType, body string }{
		{"text/html", "<html>Bad gateway (key " + html.EscapeString(key) + ")</html>"},
		{"text/html", "<html>key k/ey+Odd=9&#38;x&#60;&#34;&#39;&#62;</html>"},
		{"application/json", `{"message":"bad key k\/ey+Odd=9&x<\"'>"}`},
		{"application/json", `{"message":"bad key ` + string(jsonStd[1:len(jsonStd)-1]) + `"}`},
		{"application/json", `{"message":"bad key ` + strings.ReplaceAll(string(jsonStd[1:len(jsonStd)-1]), "/", `\/`) + `"}`},
		{"text/plain", "retry /?API_KEY=" + regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(url.QueryEscape(key), strings.ToLower)},
		{"text/plain", "retry /" + url.PathEscape(key) + "/"},
		// Every character its own way, as encoders that escape some do.
		{"text/html", "for API_KEY=k&#x2F;ey&#43;Odd&#61;9&#38;x&lt;&quot;&apos;&#X3e; in req"},
		{"application/json", `{"m":"API_KEY=\u006b\u002fey\u002bOdd\u003d9\u0026x\u003C\u0022\u0027\u003E"}`},
		{"text/plain", "quote() keeps slashes: k/ey%2BOdd%3D9%26x%3C%22%27%3E"},
		{"text/plain", "twice: k%252Fey%252BOdd%253D9%2526x%253C%2522%2527%253E"},
		{"text/plain", `mixed: k%2fey+Odd&#61;9\u0026x<\"'&gt;`},
	}
	for i, b := range bodies {
		logs, err := fetchAnswered(t, key, http.StatusBadGateway, http.Header{"Content-Type": {b.contentType}}, b.body)
		if !errors.Is(err, ErrTransient) {
			t.Fatalf("body %d: error %v, want transient", i, err)
		}
		if !strings.Contains(err.Error(), Redacted) {
			t.Errorf("body %d: error %q does not say where the key was", i, err)
		}
		for _, leak := range []string{"Odd"} {
			if strings.Contains(err.Error(), leak) || strings.Contains(logs.String(), leak) {
				t.Errorf("body %d: the key leaked (%s): %s\n%s", i, leak, err, logs)
			}
		}
	}
}

// fetchAnswered asks for page 0, with key, of a server that answers every
// request with status, hdr and body; it returns the logs and the error.
func fetchAnswered(t *testing.T, key string, status int, hdr http.Header, body string) (*testenv.Buffer, error) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		maps.Copy(w.Header(), hdr)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	c, logs := newClient(t, srv.URL, key, nil)
	_, err := c.FetchPage(context.Background(), 0, 25)
	return logs, err
}

func TestNotFoundSaysKeyOrURL(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 10}}})
	c, _ := newClient(t, base, sim.Key("p"), func(c *Config) { c.Path = "/wrong/{page}/{size}/" })
	_, err := c.FetchPage(context.Background(), 0, 25)
	if !errors.Is(err, ErrReportUnavailable) || !strings.Contains(err.Error(), "base_url or path is wrong") || !strings.Contains(err.Error(), "/wrong/0/25/") {
		t.Fatalf("404: %v", err)
	}
	if strings.Contains(err.Error(), sim.Key("p")) {
		t.Fatal("the key leaked")
	}
}

func TestPathTemplateAndParamsOnEveryRequest(t *testing.T) {
	sim, err := simulator.New(simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 60}}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bad []string
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		if r.URL.Query().Get("registrationStatus") != "label.confirmed" || !strings.HasPrefix(r.URL.Path, "/data-backend/api/public/areports/run/4711/") {
			bad = append(bad, r.URL.Path+"?"+strings.ReplaceAll(r.URL.RawQuery, sim.Key("p"), "KEY"))
		}
		mu.Unlock()
		r.URL.Path = strings.Replace(r.URL.Path, "/run/4711/", "/run/", 1)
		sim.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, sim.Key("p"), func(c *Config) {
		c.Path = "/data-backend/api/public/areports/run/4711/{page}/{size}/"
		c.Params = map[string]string{"registrationStatus": "label.confirmed"}
	})
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(*Page) error { return nil })
	if err != nil || sum.Rows != 60 {
		t.Fatalf("%+v, %v", sum, err)
	}
	srv.Close() // every request, those sent ahead included, has been served
	mu.Lock()
	defer mu.Unlock()
	if requests < 3 || len(bad) != 0 {
		t.Errorf("%d requests, %d without the template path or the filter: %v", requests, len(bad), bad)
	}
}

// TestNestedEscapedKeyWithheld: a server that quotes the key escaped in
// ways no pattern knows (escapes within escapes, HTML5 names, "+" echoed
// as a space), or cut where the client stopped reading, has the quote
// withheld: no part of the form it sent is shown, in errors or logs.
func TestNestedEscapedKeyWithheld(t *testing.T) {
	const key = `k/ey+Odd=9&x<"'>`
	jsonOf := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	forms := []string{
		"k&sol;ey&plus;Odd&equals;9&amp;x&lt;&quot;&apos;&gt;",   // HTML5 names
		"k/ey+Odd=9&AMP;x&LT;&QUOT;&apos;&GT;",                   // upper-case names
		"k/ey+Odd=9&ampx&lt&quot&#39&gt",                         // no semicolons
		jsonOf(html.EscapeString(key)),                           // JSON of HTML
		html.EscapeString(html.EscapeString(key)),                // HTML of HTML
		url.QueryEscape(html.EscapeString(key)),                  // URL of HTML
		url.QueryEscape(`\u006b\u002fey\u002bOdd\u003d9\u0026x`), // URL of JSON
		url.QueryEscape(url.QueryEscape(url.QueryEscape(key))),   // three times URL-encoded
		strings.ReplaceAll(key, "+", " "),                        // "+" echoed as a space
		html.EscapeString(jsonOf(key)),                           // HTML of JSON
	}
	check := func(what, form, msg, logs string) {
		t.Helper()
		for i := 0; i+8 <= len(form); i++ {
			if piece := form[i : i+8]; strings.Contains(msg, piece) || strings.Contains(logs, piece) {
				t.Errorf("%s: %q of the key's form %q is shown:\n%s", what, piece, form, msg)
				return
			}
		}
	}
	for i, form := range forms {
		body := "<html>Error for API_KEY=" + form + " in request</html>"
		logs, err := fetchAnswered(t, key, http.StatusInternalServerError, http.Header{"Content-Type": {"text/html"}}, body)
		if !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "HTTP 500") {
			t.Fatalf("form %d: error %v, want a transient HTTP 500", i, err)
		}
		check(fmt.Sprintf("form %d", i), form, err.Error(), logs.String())
	}
	// The key cut where the client stops reading (4,096 bytes), after
	// white space that collapses to nothing in the quote; and a header.
	for _, form := range []string{url.QueryEscape(key), jsonOf(key), html.EscapeString(key)} {
		for cut := 1; cut < len(form); cut += 3 {
			body := "<p>" + strings.Repeat(" ", 4096-3-cut) + form
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; note="+form)
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprint(w, body)
			}))
			c, logs := newClient(t, srv.URL, key, nil)
			_, err := c.FetchPage(context.Background(), 0, 25)
			srv.Close()
			check(fmt.Sprintf("cut %d of %q", cut, form), form[:cut+min(5, len(form)-cut)], err.Error(), logs.String())
		}
	}
}

// TestKeyInOtherCaseOrFormNotShown: a key of hex digits and dashes (a
// UUID) is as secret in upper case, without its dashes, or base64-encoded,
// in a body or in the Location of a redirect.
func TestKeyInOtherCaseOrFormNotShown(t *testing.T) {
	const key = "3f2a9c1e-7b4d-4e8a-9f6b-2c5d8e1a7b3c"
	upper, bare := strings.ToUpper(key), strings.ReplaceAll(key, "-", "")
	cases := []struct {
		status   int
		location string
		body     string
	}{
		{302, "/login/expired/" + upper + "?API_KEY=" + key, ""},
		{503, "", "<p>Invalid key " + upper + "</p>"},
		{500, "", `{"message":"key ` + strings.ToUpper(bare) + ` unknown"}`},
		{502, "", "bad gateway for API_KEY=" + base64.StdEncoding.EncodeToString([]byte(key))},
		{502, "", "bad gateway for " + base64.RawURLEncoding.EncodeToString([]byte(key[:12]))},
		{500, "", "key 3F2A9C1E-7B4D-… is unknown"},
		{502, "", "see /login/expired/" + base64.StdEncoding.EncodeToString([]byte(key))},
		{502, "", "abc" + base64.StdEncoding.EncodeToString([]byte(key))},
		{502, "", "x_" + base64.RawURLEncoding.EncodeToString([]byte(key))},
		{302, "/expired/" + base64.RawURLEncoding.EncodeToString([]byte(key)), ""},
		{302, "/expired/" + key[:20], ""},
	}
	for i, tc := range cases {
		hdr := http.Header{}
		if tc.location != "" {
			hdr.Set("Location", tc.location)
		}
		logs, err := fetchAnswered(t, key, tc.status, hdr, tc.body)
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		all := err.Error() + logs.String()
		for _, word := range regexp.MustCompile(`[A-Za-z0-9+/_-]{8,}`).FindAllString(all, -1) {
			for _, tok := range append(strings.Split(word, "/"), word) {
				for off := 0; off < 4 && off < len(tok); off++ {
					rest := tok[off:]
					for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
						if b, err := enc.DecodeString(rest[:len(rest)/4*4]); err == nil {
							all += " " + string(b)
						}
					}
				}
			}
		}
		all = strings.ToLower(strings.ReplaceAll(all, "-", ""))
		for j := 0; j+6 <= len(bare); j++ {
			if strings.Contains(all, bare[j:j+6]) {
				t.Errorf("case %d: six characters of the key (%s) are shown: %s\n%s", i, bare[j:j+6], err, logs)
				break
			}
		}
	}
}

// TestRetryAfterHoldsTheUser: COMET limits a user, not a request, so a 429
// with Retry-After holds every request of that user's limiter until then,
// those of other reports included, not only the retry.
func TestRetryAfterHoldsTheUser(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	var refusedAt time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		arrivals = append(arrivals, now)
		first := refusedAt.IsZero() && r.URL.Query().Get("API_KEY") == "key-a-123456"
		if first {
			refusedAt = now
		}
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `{"reportName":"r","columnNames":["Id"],"columnKeys":["id"],"columnTypes":["NUMBER"],"results":[{"id":1}],"totalSize":1,"page":0,"pageSize":25,"lastPage":0}`)
	}))
	defer srv.Close()
	limiter := NewLimiter(1000)
	a, _ := newClient(t, srv.URL, "key-a-123456", func(c *Config) { c.Limiter = limiter })
	b, _ := newClient(t, srv.URL, "key-b-123456", func(c *Config) { c.Limiter = limiter })
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { _, err := a.FetchPage(ctx, 0, 25); done <- err }()
	testenv.WaitFor(t, "the 429 to pause the user", func() bool {
		limiter.mu.Lock()
		defer limiter.mu.Unlock()
		return !limiter.pausedUntil.IsZero()
	})
	for range 5 {
		if _, err := b.FetchPage(ctx, 0, 25); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the refused request, retried: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, at := range arrivals {
		if at.After(refusedAt) && at.Before(refusedAt.Add(time.Second-50*time.Millisecond)) {
			t.Errorf("a request %s after the 429 asked for 1s", at.Sub(refusedAt).Round(time.Millisecond))
		}
	}
}

// TestFetchPagesByTheRowsServedWhenPageSizeLies: a deployment that caps
// the rows of a page without saying so (pageSize and lastPage as asked)
// is read at the size it served: page 0 held fewer rows than pageSize
// and totalSize both promise, so the rest is asked for at that size, and
// every row arrives.
func TestFetchPagesByTheRowsServedWhenPageSizeLies(t *testing.T) {
	const total, cap = 95, 10
	var mu sync.Mutex
	sizes := map[int]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		var page, size int
		fmt.Sscan(parts[len(parts)-2], &page)
		fmt.Sscan(parts[len(parts)-1], &size)
		mu.Lock()
		sizes[size]++
		mu.Unlock()
		var rows []string
		for i := page * size; i < min(page*size+min(size, cap), total); i++ {
			rows = append(rows, fmt.Sprintf(`{"id":%d}`, i))
		}
		fmt.Fprintf(w, `{"reportName":"r","columnNames":["Id"],"columnKeys":["id"],"columnTypes":["NUMBER"],"results":[%s],"totalSize":%d,"page":%d,"pageSize":%d,"lastPage":%d}`,
			strings.Join(rows, ","), total, page, size, LastPageOf(total, size))
	}))
	defer srv.Close()
	c, logs := newClient(t, srv.URL, "key-123456", func(c *Config) { c.Concurrency = 4 })
	var got []event.Row
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 25}, func(p *Page) error { collectRows(p, &got); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || !sum.RowCountsMatch || !sum.TotalSizeStable || sum.PageSize != cap || sum.Rows != total || sum.LastPage != 9 {
		t.Fatalf("summary %+v", sum)
	}
	for i, row := range got {
		if v := string(row["id"].AppendJSON(nil)); v != fmt.Sprint(i) {
			t.Fatalf("row %d is %s", i, v)
		}
	}
	if !strings.Contains(logs.String(), "fewer rows than its pageSize") {
		t.Errorf("nothing logged of the cap COMET did not declare:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	if sizes[cap] != 9 || sizes[25] < 1 {
		t.Errorf("requests by page size %v: want page 0 at 25, the 9 others at %d", sizes, cap)
	}
}

// TestServedSize: page 0 is taken for an undeclared cap only when it holds
// fewer rows than both pageSize and totalSize promise, and at least 10.
func TestServedSize(t *testing.T) {
	for _, tt := range []struct{ rows, pageSize, total, want int }{
		{100, 1000, 250, 100}, // a cap
		{250, 1000, 250, 1000},
		{1000, 1000, 5000, 1000},
		{9, 1000, 5000, 1000}, // too few to be a cap
		{10, 1000, 5000, 10},
		{0, 1000, 0, 1000},
		{100, 100, 250, 100},
	} {
		p := &Page{PageSize: tt.pageSize, TotalSize: tt.total, rows: tt.rows}
		if got := p.Served(); got != tt.want {
			t.Errorf("%d rows, pageSize %d, totalSize %d: served %d, want %d", tt.rows, tt.pageSize, tt.total, got, tt.want)
		}
	}
}

// TestCutKeyNotShown: a body long enough to be cut, whose white space
// collapses so that its end is shown, does not show the part of an escaped
// key the cut fell in.
func TestCutKeyNotShown(t *testing.T) {
	const key = "k/ey+Odd=9&x"
	var escaped strings.Builder
	for _, r := range key {
		fmt.Fprintf(&escaped, `\u%04x`, r)
	}
	// Wherever the key starts within the last few hundred bytes read.
	for start := 4096 - 16*len(key) - 80; start < 4096; start += 5 {
		split := 4096 - start
		body := "<p>" + strings.Repeat(" ", start-3) + escaped.String() + "</p>" + strings.Repeat(" ", 4096)
		logs, err := fetchAnswered(t, key, http.StatusBadGateway, http.Header{"Content-Type": {"text/html"}}, body)
		if err == nil {
			t.Fatal("no error")
		}
		// As quoted (%q, and again in JSON logs), backslashes are doubled.
		all := strings.ReplaceAll(strings.ReplaceAll(err.Error()+logs.String(), `\\`, `\`), `\\`, `\`)
		for i := 0; i+8 <= escaped.Len(); i++ {
			if piece := escaped.String()[i : i+8]; strings.Contains(all, piece) {
				t.Errorf("cut %d bytes into the escaped key: %q of it is shown: %s", split, piece, err)
				break
			}
		}
	}
}
