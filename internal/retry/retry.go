package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Jitter returns d spread uniformly over d·(1−f) to d·(1+f); f is clamped
// to [0, 1], so the result is never negative.
func Jitter(d time.Duration, f float64) time.Duration {
	f = min(max(f, 0), 1)
	spread := int64(float64(d) * f)
	if d <= 0 || spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}

// RetryAfter reads a Retry-After header value, delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3), as a wait from now, at most limit. ok is
// false when the value is empty or neither form; a date in the past is a
// wait of zero.
func RetryAfter(h string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(limit/time.Second) {
			return limit, true
		}
		return min(time.Duration(secs)*time.Second, limit), true
	}
	at, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), limit), true
}
