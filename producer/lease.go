package producer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// ErrLeaseLost means this producer no longer holds the lease of a report's
// COMET user: another producer polls it now.
var ErrLeaseLost = errors.New("lease lost")

// takeoverPause is how long a producer waits after acquiring a lease before
// its first request, so it does not spend the rate-limit window the
// previous holder may have just used.
const takeoverPause = 1100 * time.Millisecond

// unit is what one lease covers: the reports of one COMET source and user,
// which share a rate limit. Only the holder polls them.
type unit struct {
	key     string
	reports []*reporter

	mu         sync.Mutex
	rev        uint64
	validUntil time.Time // monotonic: a paused process wakes up past it
}

// check is the reporters' gate: may this producer still act for the unit?
func (u *unit) check() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Now().After(u.validUntil) {
		return ErrLeaseLost
	}
	return nil
}

// producerKeyPrefix starts the keys by which producers with leases announce
// themselves in the leases bucket.
const producerKeyPrefix = "producer."

// leaseKey is a unit's key in the leases bucket.
func leaseKey(group string) string { return "lease." + event.TokenPart(group) }

// LeaseBucketName is the bucket of leases and producer heartbeats.
func LeaseBucketName(prefix string) string { return prefix + "-leases" }

// runLeased polls only the units whose lease this producer holds: it
// acquires free leases (up to a fair share of the live producers), renews
// them, and stops a unit's pollers the moment a renewal fails.
func (p *Producer) runLeased(ctx context.Context) error {
	ttl := p.cfg.LeaseTTL
	kv, err := p.js.KeyValue(ctx, LeaseBucketName(p.cfg.Prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = p.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: LeaseBucketName(p.cfg.Prefix), Description: "cometstream producer leases", TTL: ttl,
			Storage: jetstream.FileStorage, Replicas: p.cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = p.js.KeyValue(ctx, LeaseBucketName(p.cfg.Prefix))
		}
	}
	if err != nil {
		return fmt.Errorf("lease bucket: %w", err)
	}
	groups := map[string]*unit{}
	var units []*unit
	for _, name := range p.order {
		r := p.reports[name]
		g := r.cfg.Group
		if g == "" {
			g = name
		}
		u := groups[g]
		if u == nil {
			u = &unit{key: leaseKey(g)}
			groups[g] = u
			units = append(units, u)
		}
		u.reports = append(u.reports, r)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.heartbeat(ctx, kv)
	}()
	for _, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.hold(ctx, kv, u, len(units))
		}()
	}
	wg.Wait()
	return nil
}

// heartbeat says this producer is alive, for the fair share.
func (p *Producer) heartbeat(ctx context.Context, kv jetstream.KeyValue) {
	key := producerKeyPrefix + event.TokenPart(p.cfg.InstanceID)
	t := time.NewTicker(p.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		if _, err := kv.Put(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("producer heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = kv.Purge(dctx, key)
			cancel()
			return
		case <-t.C:
		}
	}
}

// fairShare is how many units this producer should hold at most.
func (p *Producer) fairShare(ctx context.Context, kv jetstream.KeyValue, units int) int {
	live := 0
	lister, err := kv.ListKeysFiltered(ctx, producerKeyPrefix+"*")
	if err == nil {
		for range lister.Keys() {
			live++
		}
	}
	live = max(live, 1)
	return (units + live - 1) / live
}

// hold acquires, keeps and, on loss or shutdown, lets go of one unit.
func (p *Producer) hold(ctx context.Context, kv jetstream.KeyValue, u *unit, units int) {
	ttl := p.cfg.LeaseTTL
	log := p.cfg.Logger.With("lease", u.key)
	for ctx.Err() == nil {
		if p.held.Load() >= int64(p.fairShare(ctx, kv, units)) {
			sleep(ctx, ttl/3+time.Duration(rand.Int64N(int64(ttl/3))))
			continue
		}
		ok, expires := p.acquire(ctx, kv, u)
		if !ok {
			// Held by another producer: try again when it would expire
			// unless renewed, and meanwhile now and then.
			wait := ttl / 3
			if d := time.Until(expires); !expires.IsZero() && d > 0 && d < wait {
				wait = d
			}
			sleep(ctx, wait+time.Duration(rand.Int64N(int64(100*time.Millisecond))))
			continue
		}
		p.held.Add(1)
		names := make([]string, len(u.reports))
		for i, r := range u.reports {
			names[i] = r.cfg.Name
		}
		log.Info("lease acquired: polling", "reports", strings.Join(names, ","))
		uctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, r := range u.reports {
			mu := p.locks[r.cfg.Name]
			mu.Lock()
			// Recover first: another producer may have moved on.
			r.gate, r.recovered, r.failures = u.check, false, 0
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Renewals start now; requests only after the pause.
				sleep(uctx, takeoverPause)
				if uctx.Err() == nil {
					p.loop(uctx, r.cfg.Name)
				}
			}()
		}
		lost := p.renew(ctx, kv, u, units, log)
		cancel()
		wg.Wait()
		p.held.Add(-1)
		if !lost {
			// Shutting down or handing over: free the lease for another producer.
			u.mu.Lock()
			rev := u.rev
			u.validUntil = time.Time{}
			u.mu.Unlock()
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = kv.Delete(dctx, u.key, jetstream.LastRevision(rev))
			dcancel()
		}
	}
}

// acquire takes a free lease, or our own from a previous life. When another
// producer holds it, it returns when that lease expires unless renewed.
func (p *Producer) acquire(ctx context.Context, kv jetstream.KeyValue, u *unit) (bool, time.Time) {
	start := time.Now()
	var rev uint64
	e, err := kv.Get(ctx, u.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = kv.Create(ctx, u.key, []byte(p.cfg.InstanceID))
	case err != nil:
		return false, time.Time{}
	case string(e.Value()) == p.cfg.InstanceID:
		rev, err = kv.Update(ctx, u.key, []byte(p.cfg.InstanceID), e.Revision())
	default:
		return false, e.Created().Add(p.cfg.LeaseTTL)
	}
	if err != nil {
		return false, time.Time{}
	}
	u.mu.Lock()
	u.rev, u.validUntil = rev, start.Add(p.cfg.LeaseTTL*2/3)
	u.mu.Unlock()
	return true, time.Time{}
}

// renew keeps a lease until it is lost (true), ctx ends, or this producer
// holds more than its share and hands one over (false).
func (p *Producer) renew(ctx context.Context, kv jetstream.KeyValue, u *unit, units int, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}) bool {
	t := time.NewTicker(p.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if err := u.check(); err != nil {
			log.Warn("lease expired before it could be renewed (a pause?): stopping", "err", err)
			return true
		}
		start := time.Now()
		u.mu.Lock()
		rev := u.rev
		u.mu.Unlock()
		nrev, err := kv.Update(ctx, u.key, []byte(p.cfg.InstanceID), rev)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			log.Warn("lease lost: another producer polls these reports now", "err", err)
			u.mu.Lock()
			u.validUntil = time.Time{}
			u.mu.Unlock()
			return true
		}
		u.mu.Lock()
		u.rev, u.validUntil = nrev, start.Add(p.cfg.LeaseTTL*2/3)
		u.mu.Unlock()
		if held, share := p.held.Load(), p.fairShare(ctx, kv, units); held > int64(share) {
			log.Info("handing a lease over to balance producers", "held", held, "share", share)
			return false
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
