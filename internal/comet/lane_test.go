package comet

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// fakeClock is a pacing clock that moves only when the test says so.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []*fakeSleeper
	added    chan struct{} // a sleeper arrived (coalesced)
	// onSleep, when set, sees every sleep before it waits, and onWake
	// every sleeper next wakes, as it wakes it.
	onSleep func(ctx context.Context, until time.Time)
	onWake  func(ctx context.Context)
}

type fakeSleeper struct {
	ctx  context.Context
	due  time.Time
	wake chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), added: make(chan struct{}, 1)}
}

// use makes l pace by the fake clock.
func (c *fakeClock) use(l *Limiter) { l.now, l.sleepUntil = c.Now, c.SleepUntil }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, until time.Time) error {
	if c.onSleep != nil {
		c.onSleep(ctx, until)
	}
	c.mu.Lock()
	s := &fakeSleeper{ctx: ctx, due: until, wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.sleepers = slices.DeleteFunc(c.sleepers, func(x *fakeSleeper) bool { return x == s })
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// next moves the clock to the earliest sleeper's wake-up time and wakes
// it, waiting for a sleeper first when there is none.
func (c *fakeClock) next(t testing.TB) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.sleepers) > 0 {
			first := 0
			for i, s := range c.sleepers {
				if s.due.Before(c.sleepers[first].due) {
					first = i
				}
			}
			s := c.sleepers[first]
			c.sleepers = slices.Delete(c.sleepers, first, first+1)
			if s.due.After(c.now) {
				c.now = s.due
			}
			if c.onWake != nil {
				c.onWake(s.ctx)
			}
			c.mu.Unlock()
			close(s.wake)
			return
		}
		c.mu.Unlock()
		select {
		case <-c.added:
		case <-deadline.C:
			t.Fatal("no request is waiting for a token")
		}
	}
}

// waitUntil polls cond until it holds, failing after ten seconds.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPassesTakeTurns: passes queued for tokens of one user are served in
// turn, one request each, however many requests each has waiting: a small
// report's request is granted within one slot per other pass after it
// asks. Time is a fake clock moved slot by slot, and each slot is granted
// only once every request that can hold a place holds one, so the order
// is exact.
func TestPassesTakeTurns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		big   []int // requests waiting in each big pass, queued in this order
		lanes bool
		// bound is the most slots the small request may wait for after it
		// asks, its own included.
		bound int
	}{
		{"one pass of 300 requests", []int{300}, true, 2},
		{"two passes of 100", []int{100, 100}, true, 3},
		// Requests without a pass (FetchPage) queue first come, first
		// served: what every request of a pass would do without lanes.
		{"without lanes, first come first served", []int{300}, false, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			l := NewLimiter(10)
			clk.use(l)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			granted := make(chan string, 1024)
			left := map[string]int{} // requests not granted yet, by pass
			ask := func(ctx context.Context, who string) {
				left[who]++
				wg.Add(1)
				go func() {
					defer wg.Done()
					if l.Wait(ctx) == nil {
						granted <- who
					}
				}()
			}
			// places is how many requests hold a place in the queue once
			// every one that can has asked: one per pass with lanes.
			places := func() int {
				n := 0
				for _, k := range left {
					if tc.lanes {
						k = min(k, 1)
					}
					n += k
				}
				return n
			}
			var order []string
			take := func() string {
				t.Helper()
				select {
				case who := <-granted:
					order = append(order, who)
					left[who]--
					waitUntil(t, "every pass holds its place", func() bool { return clk.waiting() == places() })
					return who
				case <-time.After(10 * time.Second):
					t.Fatalf("no request granted after %v", order)
					return ""
				}
			}
			for i, n := range tc.big {
				who := fmt.Sprintf("big%d", i)
				pctx := ctx
				if tc.lanes {
					pctx = withLane(ctx)
				}
				for range n {
					ask(pctx, who)
				}
				if i == 0 {
					take() // the very first request of all goes at once
				}
				if tc.lanes {
					// One of the pass's requests holds a place; the rest
					// wait for their turn.
					ln := pctx.Value(laneKey{}).(*lane)
					waitUntil(t, who+"'s requests wait for their turn", func() bool { return int(ln.waiting.Load()) == left[who]-1 })
				}
				waitUntil(t, who+" holds its places", func() bool { return clk.waiting() == places() })
			}
			asked := len(order)
			sctx := ctx
			if tc.lanes {
				sctx = withLane(ctx)
			}
			ask(sctx, "small")
			waitUntil(t, "the small report holds a place", func() bool { return clk.waiting() == places() })
			for {
				clk.next(t)
				if take() == "small" {
					break
				}
			}
			if waited := len(order) - asked; waited > tc.bound {
				t.Errorf("the small report's request was granted %d slots after it asked, want at most %d: %v", waited, tc.bound, order)
			} else if !tc.lanes && waited != tc.bound {
				t.Errorf("without lanes the small request waited %d slots, want all %d before it", waited, tc.bound)
			}
			if len(tc.big) < 2 {
				return
			}
			// The big passes alternate.
			for range 10 {
				clk.next(t)
				take()
			}
			tail := order[len(order)-10:]
			for i := 1; i < len(tail); i++ {
				if tail[i] == tail[i-1] {
					t.Fatalf("%s was granted twice in a row while another pass waited: %v", tail[i], order)
				}
			}
		})
	}
}

// failingTransport answers 503 while failing is set.
type failingTransport struct {
	failing atomic.Bool
	next    http.RoundTripper
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.failing.Load() {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	}
	return f.next.RoundTrip(r)
}

// TestFetchTakesTurns: while a 300-page pass has many requests waiting for
// a token (pages being retried), a 1-page report of the same user is
// granted its token after at most one of the big pass's. The pacing clock
// is fake and moved one slot at a time; the order of grants is recorded.
func TestFetchTakesTurns(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{
		{Name: "big", Kind: "persons", Rows: 300}, {Name: "small", Kind: "persons", Rows: 1},
	}})
	clk := newFakeClock()
	l := NewLimiter(1000)
	clk.use(l)
	type sleep struct {
		lane *lane
		wake bool // false: it asked (holds a place); true: granted
	}
	var mu sync.Mutex
	var log []sleep
	clk.onSleep = func(ctx context.Context, _ time.Time) {
		ln, _ := ctx.Value(laneKey{}).(*lane)
		mu.Lock()
		log = append(log, sleep{lane: ln})
		mu.Unlock()
	}
	clk.onWake = func(ctx context.Context) {
		ln, _ := ctx.Value(laneKey{}).(*lane)
		mu.Lock()
		log = append(log, sleep{lane: ln, wake: true})
		mu.Unlock()
	}
	tr := &failingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	retrying := func(c *Config) {
		c.Limiter = l
		c.MaxRetries = 1 << 20
		c.Backoff = Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxElapsed: time.Hour}
	}
	big, _ := newClient(t, base, sim.Key("big"), func(c *Config) { retrying(c); c.HTTPClient = &http.Client{Transport: tr} })
	small, _ := newClient(t, base, sim.Key("small"), retrying)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	fetch := func(c *Client, opts FetchOptions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Fetch(ctx, opts, func(*Page) error { return nil })
		}()
	}
	fetch(big, FetchOptions{PageSize: 1})
	for range 30 { // page 0 and more arrive
		clk.next(t)
	}
	mu.Lock()
	bigLane := log[0].lane
	mu.Unlock()
	if bigLane == nil {
		t.Fatal("the pass's requests carry no lane")
	}
	// COMET fails the big pass's requests: its pages in flight retry, and
	// queue for tokens.
	tr.failing.Store(true)
	// Retries back off in real time before they queue: each gets a moment
	// to join the queue before the clock grants the next token.
	queued := func() bool {
		for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if bigLane.waiting.Load() >= 3 {
				return true
			}
		}
		return false
	}
	for i := 0; !queued(); i++ {
		if i > 1000 {
			t.Fatal("the big pass's retries never queued")
		}
		clk.next(t)
	}
	mu.Lock()
	asked := len(log)
	mu.Unlock()
	fetch(small, FetchOptions{PageSize: 1, ExpectPages: 1})
	smallAsked := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		for i, s := range log[asked:] {
			if s.lane != bigLane && !s.wake {
				return asked + i, true
			}
		}
		return 0, false
	}
	waitUntil(t, "the small report asks for a token", func() bool { _, ok := smallAsked(); return ok })
	at, _ := smallAsked()
	for {
		clk.next(t)
		mu.Lock()
		last := log[len(log)-1]
		mu.Unlock()
		if last.wake && last.lane != bigLane {
			break
		}
	}
	tr.failing.Store(false)
	mu.Lock()
	defer mu.Unlock()
	smallLane := log[at].lane
	if smallLane == nil {
		t.Fatal("the small pass's request carries no lane")
	}
	before := 0
	for _, s := range log[at:] {
		if s.wake && s.lane == bigLane {
			before++
		}
		if s.wake && s.lane == smallLane {
			break
		}
	}
	if before > 1 {
		t.Errorf("the small report's request was granted after %d of the big pass's, want at most 1", before)
	}
	for _, s := range log {
		if s.lane == nil {
			t.Fatal("a request of a pass (a retry?) waited for a token outside its pass's lane")
		}
	}
}
