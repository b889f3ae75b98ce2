package comet

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps one COMET user's requests under its calls per second, for
// every report of that user (retries included). It works in two steps:
//
//   - Wait paces requests LimiterMargin under the limit, with a burst of one.
//   - admit, called when a request has its connection and is about to be
//     written, holds it until it cannot be the (N+1)th request written
//     within a second (plus windowMargin) of the Nth before it, counting
//     when the earlier requests were actually written.
//
// The second step is what makes the limit hold whatever happens between
// taking a token and the bytes leaving: a goroutine scheduled late, a
// connection being dialled, a busy machine. Pacing alone, even with a wide
// margin, loses to a request that leaves 100 ms after its token while the
// ones behind it leave on time.
type Limiter struct {
	rate   *rate.Limiter
	n      int // requests allowed in any second
	mu     sync.Mutex
	ring   []time.Time // when the last n admitted requests were written (or are due)
	next   int
	window time.Duration
}

// LimiterMargin is the share of COMET's limit that pacing leaves unused,
// and windowMargin what the written-requests window adds to a second: at
// 10 calls a second, ten requests take at least 1.04 s to be written.
const (
	LimiterMargin = 0.04
	windowMargin  = 40 * time.Millisecond
)

// NewLimiter returns a limiter for callsPerSecond calls per second.
func NewLimiter(callsPerSecond float64) *Limiter {
	n := int(math.Floor(callsPerSecond))
	return &Limiter{
		rate:   rate.NewLimiter(rate.Limit(callsPerSecond*(1-LimiterMargin)), 1),
		n:      max(n, 1),
		ring:   make([]time.Time, max(n, 1)),
		window: time.Second + windowMargin,
	}
}

// Limit is the calls per second the limiter keeps under (COMET's limit).
func (l *Limiter) Limit() float64 { return float64(l.rate.Limit()) / (1 - LimiterMargin) }

// Wait takes a token, waiting for one; it fails when ctx ends first.
func (l *Limiter) Wait(ctx context.Context) error { return l.rate.Wait(ctx) }

// slot is an admitted request's place in the ring.
type slot struct {
	l *Limiter
	i int
}

// admit waits until a request written now keeps at most n requests
// written in any window, and reserves its place; the caller reports when
// the request was written with wrote.
func (l *Limiter) admit(ctx context.Context) (slot, error) {
	l.mu.Lock()
	i := l.next
	due := time.Now()
	if oldest := l.ring[i]; !oldest.IsZero() {
		due = maxTime(due, oldest.Add(l.window))
	}
	l.ring[i] = due // reserved: later requests count from it
	l.next = (i + 1) % l.n
	l.mu.Unlock()
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return slot{l: l, i: i}, ctx.Err()
		case <-t.C:
		}
	}
	return slot{l: l, i: i}, nil
}

// wrote records when an admitted request finished being written: later
// requests count a second from then, which is no earlier than it reached
// COMET's side of the connection.
func (s slot) wrote(at time.Time) {
	if s.l == nil {
		return
	}
	s.l.mu.Lock()
	if at.After(s.l.ring[s.i]) {
		s.l.ring[s.i] = at
	}
	s.l.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
