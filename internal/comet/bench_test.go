package comet

import (
	"context"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// BenchmarkFetchRateLimited fetches a 100-page report from a simulator that
// takes 300 ms per request and allows 10 calls a second, and reports the
// achieved rate as a ratio of the limit: "ratio" is requests over wall time,
// "arrival_ratio" is the rate COMET saw between the first and last arrival.
// The baseline, sequential paging, is measured in the same run on 20 pages.
//
//	go test -run XXX -bench FetchRateLimited -benchtime 1x ./internal/comet
func BenchmarkFetchRateLimited(b *testing.B) {
	const limit = 10
	cases := []struct {
		name        string
		pages       int
		concurrency int
		warm        bool // a previous pass gives the page count
	}{
		{"sequential-baseline", 20, 1, false},
		{"first-pass", 100, DefaultConcurrency, false},
		{"steady-pass", 100, DefaultConcurrency, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			sim, base := testenv.StartSim(b, simulator.Config{
				Seed: 1, RateLimit: limit, Latency: 300 * time.Millisecond,
				Reports: []simulator.ReportSpec{{Name: "p", Kind: "persons", Rows: tc.pages * 10}},
			})
			c, _ := newClient(b, base, sim.Key("p"), func(c *Config) {
				c.Limiter = NewLimiter(limit)
				c.Concurrency = tc.concurrency
			})
			hint := 0
			if tc.warm {
				sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 10}, func(*Page) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				hint = sum.LastPage + 1
				time.Sleep(time.Second) // let the user's window drain, as between two passes
			}
			sim.ResetStats()
			var requests int
			var wall time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				sum, err := c.Fetch(context.Background(), FetchOptions{PageSize: 10, ExpectPages: hint}, func(*Page) error { return nil })
				wall += time.Since(start)
				if err != nil || !sum.Complete {
					b.Fatalf("pass: %+v, %v", sum, err)
				}
				requests += sum.Requests
			}
			st := sim.Stats()
			u := st.Users["default"]
			if st.Violations != 0 {
				b.Fatalf("%d rate-limit violations", st.Violations)
			}
			b.ReportMetric(float64(requests)/wall.Seconds(), "req/s")
			b.ReportMetric(float64(requests)/wall.Seconds()/limit, "ratio")
			if u.Calls > 1 {
				b.ReportMetric(float64(u.Calls-1)/u.Last.Sub(u.First).Seconds()/limit, "arrival_ratio")
			}
		})
	}
}
