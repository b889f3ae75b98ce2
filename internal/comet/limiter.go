package comet

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
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
//
// Tokens go out in the order they were asked for, and each pass (one
// Fetch, its retries included) holds at most one place in that queue at a
// time (see lane): the reports of a user take turns, so a 1-page report
// waits for at most one request of each other pass under way, never for
// the rest of a 300-page pass.
type Limiter struct {
	rate   *rate.Limiter
	n      int // requests allowed in any second
	mu     sync.Mutex
	ring   []time.Time // when the last n admitted requests were written (or are due)
	next   int
	window time.Duration
	// pausedUntil holds every request until then (Pause).
	pausedUntil time.Time

	// now and sleepUntil are the pacing's clock; tests replace them.
	now        func() time.Time
	sleepUntil func(ctx context.Context, t time.Time) error
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
		rate:       rate.NewLimiter(rate.Limit(callsPerSecond*(1-LimiterMargin)), 1),
		n:          max(n, 1),
		ring:       make([]time.Time, max(n, 1)),
		window:     time.Second + windowMargin,
		now:        time.Now,
		sleepUntil: sleepUntil,
	}
}

// Limit is the calls per second the limiter keeps under (COMET's limit).
func (l *Limiter) Limit() float64 { return float64(l.rate.Limit()) / (1 - LimiterMargin) }

// errPastDeadline says a token would come after the context's deadline.
var errPastDeadline = errors.New("rate limiter: the next token comes after the context's deadline")

// Wait takes a token, waiting for one; it fails when ctx ends first, or at
// once when ctx's deadline comes before the token would. When ctx belongs
// to a pass (withLane), Wait first waits for the pass's earlier requests
// to have taken theirs.
func (l *Limiter) Wait(ctx context.Context) error {
	if ln, _ := ctx.Value(laneKey{}).(*lane); ln != nil {
		if err := ln.take(ctx); err != nil {
			return err
		}
		defer ln.give()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A Retry-After holds the user: wait it out here, under the pass's
	// context, rather than in admit under one attempt's timeout. Pauses
	// are wall-clock times, as admit's window is: not the pacing's clock.
	for {
		l.mu.Lock()
		paused := l.pausedUntil
		l.mu.Unlock()
		if !paused.After(time.Now()) {
			break
		}
		if err := sleepUntil(ctx, paused); err != nil {
			return err
		}
	}
	now := l.now()
	wait := rate.InfDuration
	if deadline, ok := ctx.Deadline(); ok {
		wait = deadline.Sub(now)
	}
	r := l.rate.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d > wait {
		r.CancelAt(now)
		return errPastDeadline
	}
	if d == 0 {
		return nil
	}
	if err := l.sleepUntil(ctx, now.Add(d)); err != nil {
		// Give the token back: the requests behind may go sooner.
		r.CancelAt(l.now())
		return err
	}
	return nil
}

// sleepUntil waits until t, or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// A lane is one pass's place in its user's queue. Without it, every
// request of a pass waiting for a token would hold a place: a pass whose
// pages are being retried, or a fetcher that asked for tokens ahead, would
// put all of them before a small report's one request. With it, a pass
// holds one place at a time and its next request queues again behind those
// that asked meanwhile: the passes of a user take turns.
type lane struct {
	turn chan struct{} // full while one of the pass's requests holds a place
	// waiting counts the requests waiting for the turn (for tests).
	waiting atomic.Int32
}

type laneKey struct{}

// withLane returns ctx carrying a new lane: the requests made with it, or
// with a context derived from it, take their turn in the limiter one at a
// time.
func withLane(ctx context.Context) context.Context {
	return context.WithValue(ctx, laneKey{}, &lane{turn: make(chan struct{}, 1)})
}

// take waits for the lane's turn.
func (ln *lane) take(ctx context.Context) error {
	select {
	case ln.turn <- struct{}{}:
		return nil
	default:
	}
	ln.waiting.Add(1)
	defer ln.waiting.Add(-1)
	select {
	case ln.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ln *lane) give() { <-ln.turn }

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
	due := maxTime(time.Now(), l.pausedUntil)
	if oldest := l.ring[i]; !oldest.IsZero() {
		due = maxTime(due, oldest.Add(l.window))
	}
	l.ring[i] = due // reserved: later requests count from it
	l.next = (i + 1) % l.n
	l.mu.Unlock()
	for {
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return slot{l: l, i: i}, ctx.Err()
			case <-t.C:
			}
		}
		// A Pause that came while this request waited holds it too.
		l.mu.Lock()
		paused := l.pausedUntil
		if !paused.After(due) {
			l.mu.Unlock()
			return slot{l: l, i: i}, nil
		}
		due = paused
		l.ring[i] = maxTime(l.ring[i], due)
		l.mu.Unlock()
	}
}

// Pause holds every request of the user, of any report, until t: COMET
// asked (Retry-After) for no more calls before then.
func (l *Limiter) Pause(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pausedUntil = maxTime(l.pausedUntil, t)
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
