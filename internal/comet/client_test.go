package comet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// startSim serves a simulator over real HTTP on loopback.
func startSim(t testing.TB, cfg simulator.Config) (*simulator.Simulator, string) {
	t.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newClient(t testing.TB, base, key string, mod func(*Config)) (*Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
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
		if got := c.URL(3, 1000); got != want {
			t.Errorf("base %q: URL %q, want %q", base, got, want)
		}
		if got := c.RedactedURL(3, 1000); strings.Contains(got, "k+y") {
			t.Errorf("redacted URL %q", got)
		}
	}
}

// TestFailureClasses drives every failure class through real HTTP and checks
// the class, the status and that the key appears in no error or log line.
func TestFailureClasses(t *testing.T) {
	sim, base := startSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 60}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 10}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 10}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "m", Kind: "matches", Rows: 185}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 100}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 100}}})
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
	sim, base := startSim(t, simulator.Config{Seed: 1, Reports: specs, RateLimit: 10})
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
