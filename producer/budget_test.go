package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestUserBudgetMetrics: the reports of one COMET user count their calls
// together, as many as COMET saw, next to the limit they share, so that
// rate(calls) / limit is the share of the user's budget in use.
func TestUserBudgetMetrics(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "players", Kind: "persons", Rows: 60}, simulator.ReportSpec{Name: "coaches", Kind: "persons", Rows: 30})
	shared := comet.NewLimiter(50)
	user := func(rc *ReportConfig) { rc.Comet.Limiter, rc.Group = shared, "sim/default" }
	e.open(e.reportConfig("players", user), e.reportConfig("coaches", user))
	e.poll("players")
	e.poll("coaches")
	e.poll("players")

	calls := testutil.ToFloat64(e.p.m.userCalls.WithLabelValues("sim/default"))
	if seen := e.sim.Stats().Users["default"].Calls; calls != float64(seen) || seen == 0 {
		t.Errorf("the user's reports counted %v calls, COMET saw %d", calls, seen)
	}
	perReport := testutil.ToFloat64(e.p.m.requests.WithLabelValues("players", "200")) + testutil.ToFloat64(e.p.m.requests.WithLabelValues("coaches", "200"))
	if calls != perReport {
		t.Errorf("the user counted %v calls, its reports %v", calls, perReport)
	}
	if limit := testutil.ToFloat64(e.p.m.userLimit.WithLabelValues("sim/default")); limit != 50 {
		t.Errorf("cometstream_user_rate_limit = %v, want the limit, 50", limit)
	}
}

// arrivals records when each request reached the simulator.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.at = append(a.at, time.Now())
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// between counts the arrivals in [from, to].
func (a *arrivals) between(from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, t := range a.at {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// worstStaleness is the longest a report went without a consistent pass
// at any moment of [from, to], given when its consistent passes finished,
// in order, the first no later than from.
func worstStaleness(finished []time.Time, from, to time.Time) time.Duration {
	last := finished[0]
	var worst time.Duration
	for _, f := range finished[1:] {
		if f.After(to) {
			break
		}
		if f.After(from) {
			worst = max(worst, f.Sub(last))
		}
		last = f
	}
	return max(worst, to.Sub(last))
}

// BenchmarkUserBudget12Reports polls 12 reports of one COMET user, of 1 to
// 300 pages, from a simulator that takes 300 ms a request and allows 10
// calls a second, and measures what the 300-page report's pass does to the
// others: "budget_ratio" is the calls COMET saw while it ran over what the
// limit allows in that time (the baseline: the limit), and
// "stale_over_interval" the longest the 1-page report went without a
// consistent pass meanwhile, over its interval (the baseline: its
// interval; "stale_excess_s" is the difference, in seconds).
//
//	go test -run XXX -bench UserBudget12Reports -benchtime 1x ./producer
func BenchmarkUserBudget12Reports(b *testing.B) {
	const limit = 10
	reports := []struct {
		pages    int
		interval time.Duration
	}{
		{1, 5 * time.Second}, {2, 5 * time.Second}, {3, 15 * time.Second}, {4, 15 * time.Second},
		{5, 20 * time.Second}, {6, 20 * time.Second}, {8, 30 * time.Second}, {10, 30 * time.Second},
		{12, 40 * time.Second}, {15, 40 * time.Second}, {20, 60 * time.Second}, {300, time.Hour},
	}
	name := func(i int) string { return fmt.Sprintf("r%03d", reports[i].pages) }
	small, big := name(0), name(len(reports)-1)
	var used, allowed float64
	var worst, interval time.Duration
	for b.Loop() {
		specs := make([]simulator.ReportSpec, len(reports))
		for i, r := range reports {
			specs[i] = simulator.ReportSpec{Name: name(i), Kind: "persons", Rows: 10 * r.pages}
		}
		sim, err := simulator.New(simulator.Config{Seed: 1, RateLimit: limit, Latency: 300 * time.Millisecond, Reports: specs})
		if err != nil {
			b.Fatal(err)
		}
		arr := &arrivals{}
		hs := httptest.NewServer(arr.wrap(sim.Handler()))
		srv := testenv.StartNATS(b, b.TempDir())
		nc, _ := testenv.Connect(b, srv.ClientURL())
		limiter := comet.NewLimiter(limit)
		var rcs []ReportConfig
		for i, r := range reports {
			rcs = append(rcs, ReportConfig{Name: name(i), Key: []string{"personId"}, Interval: r.interval, PageSize: 10, MaxDeleteFraction: 0.5,
				Group: "sim/default", Comet: comet.Config{BaseURL: hs.URL, APIKey: sim.Key(name(i)), Limiter: limiter}})
		}
		p, err := New(Config{Conn: nc, Stream: "COMET", Prefix: "comet", Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Reports: rcs})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := p.Open(ctx); err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var running time.Time // when Run started the loops
		var smallDone []time.Time
		var bigPass *event.Synced
		sub, err := nc.Subscribe(event.ReportSubject("comet", "*", "synced"), func(m *nats.Msg) {
			var ev struct {
				Data event.Synced `json:"data"`
			}
			if err := json.Unmarshal(m.Data, &ev); err != nil || !ev.Data.Consistent {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch ev.Data.Report {
			case small:
				if !running.IsZero() && ev.Data.Started.After(running) {
					smallDone = append(smallDone, ev.Data.Finished)
				}
			case big:
				if bigPass == nil {
					bigPass = &ev.Data
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		// Every report but the big one has had a pass: its page count is
		// known, as in a producer that has been running.
		var g errgroup.Group
		for i := range len(reports) - 1 {
			g.Go(func() error { _, err := p.Poll(ctx, name(i)); return err })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		running = time.Now()
		mu.Unlock()
		ran := make(chan error, 1)
		go func() { ran <- p.Run(ctx) }()
		deadline := time.Now().Add(5 * time.Minute)
		for done := false; !done; {
			if time.Now().After(deadline) {
				b.Fatal("the 300-page report did not finish a pass in 5 minutes")
			}
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			done = bigPass != nil
			mu.Unlock()
		}
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		_ = sub.Unsubscribe()
		hs.Close()
		if st := sim.Stats(); st.Violations != 0 {
			b.Fatalf("%d rate-limit violations", st.Violations)
		}
		// From the 1-page report's first pass under Run (its passes before
		// were the warm-up's, all at once), to the big pass's end.
		mu.Lock()
		if len(smallDone) == 0 {
			b.Fatal("the 1-page report had no pass while the big one ran")
		}
		from := bigPass.Started
		if smallDone[0].After(from) {
			from = smallDone[0]
		}
		w := worstStaleness(smallDone, from, bigPass.Finished)
		mu.Unlock()
		worst, interval = max(worst, w), reports[0].interval
		window := bigPass.Finished.Sub(bigPass.Started)
		used += float64(arr.between(bigPass.Started, bigPass.Finished))
		allowed += window.Seconds() * limit
	}
	b.ReportMetric(used/allowed, "budget_ratio")
	b.ReportMetric(worst.Seconds()/interval.Seconds(), "stale_over_interval")
	b.ReportMetric((worst - interval).Seconds(), "stale_excess_s")
}
