package comet

import (
	"context"
	"github.com/cometstream/cometstream/internal/testenv"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
)

func TestAdmitCountsWrittenRequests(t *testing.T) {
	l := NewLimiter(3)
	ctx := context.Background()
	start := time.Now()
	var slots []slot
	for range 3 {
		s, err := l.admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("the first three requests waited %s", d)
	}
	// The first was written late: the fourth counts a window from then.
	late := time.Now().Add(200 * time.Millisecond)
	slots[0].wrote(late)
	if _, err := l.admit(ctx); err != nil {
		t.Fatal(err)
	}
	if earliest := late.Add(time.Second + windowMargin); time.Now().Before(earliest) {
		t.Errorf("the fourth request was admitted %s before a window had passed since the first was written", time.Until(earliest))
	}
	// A request that must wait stops waiting when its context ends.
	one := NewLimiter(1)
	one.admit(ctx)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	began := time.Now()
	if _, err := one.admit(cctx); err == nil || time.Since(began) > 500*time.Millisecond {
		t.Errorf("admit with a cancelled context: %v after %s", err, time.Since(began))
	}
}

// lateTransport delays every fourth request before it reaches the
// connection, as a dial or a descheduled goroutine would.
type lateTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (l *lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if l.n.Add(1)%4 == 0 {
		time.Sleep(300 * time.Millisecond)
	}
	return l.next.RoundTrip(r)
}

// TestLateRequestsStillUnderTheLimit: requests that leave long after their
// token was taken do not crowd the ones behind them into one second.
func TestLateRequestsStillUnderTheLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("four seconds of rate-limited requests")
	}
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 2, RateLimit: 10, Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: 400}}})
	tr := &lateTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	c, _ := newClient(t, base, sim.Key("p"), func(c *Config) {
		c.Limiter = NewLimiter(10)
		c.HTTPClient = &http.Client{Transport: tr}
	})
	sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 10}, func(*Page) error { return nil })
	if err != nil || sum.Pages != 40 {
		t.Fatalf("%+v, %v", sum, err)
	}
	if st := sim.Stats(); st.Violations != 0 {
		t.Errorf("%d rate-limit violations with late requests", st.Violations)
	}
}

// TestPauseHoldsWaitingRequests: a Pause holds a request already waiting
// in admit for its place in the window, not only the requests after it.
func TestPauseHoldsWaitingRequests(t *testing.T) {
	l := NewLimiter(2)
	ctx := context.Background()
	for range 2 {
		if _, err := l.admit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	done := make(chan time.Time, 1)
	go func() {
		if _, err := l.admit(ctx); err != nil { // waits about a second for its place
			t.Error(err)
		}
		done <- time.Now()
	}()
	testenv.WaitFor(t, "the third request to take its place", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.next == 1 })
	l.Pause(start.Add(2 * time.Second))
	if at := <-done; at.Before(start.Add(2 * time.Second)) {
		t.Errorf("a request waiting when the pause came left %s after the start, before the pause's 2s", at.Sub(start).Round(time.Millisecond))
	}
}
