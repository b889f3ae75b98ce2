package retry

import (
	"testing"
	"time"
)

func TestJitterStaysInItsBand(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		f      float64
		lo, hi time.Duration
	}{
		{time.Second, 0.2, 800 * time.Millisecond, 1200 * time.Millisecond},
		{time.Second, 0.5, 500 * time.Millisecond, 1500 * time.Millisecond},
		{10 * time.Second, 0.1, 9 * time.Second, 11 * time.Second},
		{time.Second, 0, time.Second, time.Second},
		{time.Second, 7, 0, 2 * time.Second}, // clamped to 1
		{0, 0.5, 0, 0},
		{time.Nanosecond, 0.2, time.Nanosecond, time.Nanosecond},
	} {
		var sawLow, sawHigh bool
		mid := tc.d
		for range 2000 {
			got := Jitter(tc.d, tc.f)
			if got < tc.lo || got > tc.hi {
				t.Fatalf("Jitter(%s, %v) = %s, outside [%s, %s]", tc.d, tc.f, got, tc.lo, tc.hi)
			}
			sawLow = sawLow || got < mid
			sawHigh = sawHigh || got > mid
		}
		if tc.lo < tc.hi && (!sawLow || !sawHigh) {
			t.Errorf("Jitter(%s, %v) never spread both ways in 2000 draws (below %v, above %v)", tc.d, tc.f, sawLow, sawHigh)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"86400", time.Minute, true},               // capped
		{"99999999999999999999", 0, false},         // does not parse as int64, nor a date
		{"9223372036854775807", time.Minute, true}, // would overflow a Duration
		{"Tue, 01 Dec 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0, true},                  // in the past
		{"Wed, 02 Dec 2026 12:00:00 GMT", time.Minute, true},        // capped
		{"Tuesday, 01-Dec-26 12:00:10 GMT", 10 * time.Second, true}, // RFC 850
	} {
		got, ok := RetryAfter(tc.h, now, time.Minute)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %s, %v; want %s, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}
