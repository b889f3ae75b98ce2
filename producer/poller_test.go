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
