package producer

import (
	"testing"
	"time"
)

func TestFailureBackoff(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{time.Minute, 1, time.Minute},
		{time.Minute, 2, 2 * time.Minute},
		{time.Minute, 3, 4 * time.Minute},
		{time.Minute, 5, 16 * time.Minute},
		{time.Minute, 6, 30 * time.Minute}, // 32m, capped at half an hour
		{time.Minute, 1000, 30 * time.Minute},
		{10 * time.Second, 11, 30 * time.Minute}, // 10s<<10 = 2h50m, capped
		{time.Second, 11, 1024 * time.Second},    // the doubling stops after ten
		{time.Second, 12, 1024 * time.Second},    // ... and stays there
		{2 * time.Hour, 1, 2 * time.Hour},        // an interval above the cap is the cap
		{2 * time.Hour, 4, 2 * time.Hour},
		{time.Minute, 0, time.Minute},
	} {
		if got := failureBackoff(tc.interval, tc.failures); got != tc.want {
			t.Errorf("failureBackoff(%s, %d) = %s, want %s", tc.interval, tc.failures, got, tc.want)
		}
	}
}

// TestPassWaitNeverLate: the next pass starts no later than the interval
// after the last one started, and at most a tenth of it (and a second)
// sooner, spread over that band.
func TestPassWaitNeverLate(t *testing.T) {
	for _, tc := range []struct {
		interval, earliest time.Duration
	}{
		{time.Minute, time.Minute - time.Second},
		{5 * time.Second, 4500 * time.Millisecond},
		{time.Second, 900 * time.Millisecond},
		{time.Hour, time.Hour - time.Second},
	} {
		var sawEarly, sawLate bool
		for range 2000 {
			got := passWait(tc.interval)
			if got > tc.interval || got < tc.earliest {
				t.Fatalf("passWait(%s) = %s, outside [%s, %s]", tc.interval, got, tc.earliest, tc.interval)
			}
			mid := tc.earliest + (tc.interval-tc.earliest)/2
			sawEarly = sawEarly || got < mid
			sawLate = sawLate || got > mid
		}
		if !sawEarly || !sawLate {
			t.Errorf("passWait(%s) never spread over its band in 2000 draws", tc.interval)
		}
	}
}
