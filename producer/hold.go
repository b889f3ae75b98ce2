package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/statekv"
)

// A pass that would delete more than max_delete_fraction of a report holds
// its deletes: the report keeps its rows until a pass falls under the
// threshold (the hold ends) or an operator releases this hold. A release
// (event.Release, under event.AllowDeletesKey) names the hold it applies
// to, by the sync of the pass that started it, allows at most the deletes
// held when it was given, and expires; a release for another hold, or an
// expired one, is discarded. A held event is published when a hold starts,
// is released, or ends — not when its size changes.

// ErrNothingHeld means a release was asked for a report that holds no
// deletes: a release is for a hold that exists.
var ErrNothingHeld = errors.New("the report holds no deletes")

// DefaultReleaseTTL is how long a release waits for the pass that applies
// it.
const DefaultReleaseTTL = time.Hour

// hold records that this pass holds n deletes, and publishes a held event
// when the hold starts.
func (ps *pass) hold(ctx context.Context, n, rowsBefore int) error {
	r := ps.r
	r.p.m.heldDeletes.WithLabelValues(r.cfg.Name).Set(float64(n))
	starts := r.state.Held == 0
	r.state.Held = n
	if !starts {
		return nil
	}
	r.state.Hold, r.state.HeldSince = ps.sync, r.p.cfg.Now().UTC()
	if err := ps.heldEvent(ctx, event.HoldStarted, n, rowsBefore); err != nil {
		return err
	}
	r.log.Error("deletes held: this pass would delete more than max_delete_fraction of the report; run `cometstream allow-deletes` to release them",
		"would_delete", n, "rows", rowsBefore, "max_delete_fraction", r.cfg.MaxDeleteFraction, "hold", ps.sync)
	return nil
}

// endHold ends the current hold, if there is one: released by an operator
// or ended by a pass under the threshold.
func (ps *pass) endHold(ctx context.Context, phase event.HoldPhase, n, rowsBefore int) error {
	r := ps.r
	r.p.m.heldDeletes.WithLabelValues(r.cfg.Name).Set(0)
	if r.state.Held == 0 {
		return nil
	}
	if err := ps.heldEvent(ctx, phase, n, rowsBefore); err != nil {
		return err
	}
	r.log.Info("deletes no longer held", "phase", phase, "hold", r.state.Hold)
	r.state.Held, r.state.Hold, r.state.HeldSince = 0, "", time.Time{}
	// A release given for this hold has nothing left to apply to.
	if err := r.p.state.Purge(ctx, event.AllowDeletesKey(r.cfg.Name)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("discard the release of %s: %w", r.cfg.Name, err)
	}
	return nil
}

func (ps *pass) heldEvent(ctx context.Context, phase event.HoldPhase, n, rowsBefore int) error {
	r := ps.r
	id := event.ID(r.cfg.Name, string(event.KindHeld), r.state.Hold, string(phase))
	data := event.Held{Report: r.cfg.Name, WouldDelete: n, RowsBefore: rowsBefore, Threshold: r.cfg.MaxDeleteFraction, Phase: phase, Hold: r.state.Hold}
	return ps.report(ctx, event.KindHeld, id, data)
}

// released reports whether an operator released the current hold for the
// n deletes this pass would make, consuming the release. A release for
// another hold, for fewer deletes, or expired, does not apply; it is
// discarded (said in the log) unless it may still apply later.
func (ps *pass) released(ctx context.Context, n int) (bool, error) {
	r := ps.r
	key := event.AllowDeletesKey(r.cfg.Name)
	e, err := r.p.state.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the release of %s: %w", r.cfg.Name, err)
	}
	var rel event.Release
	_ = json.Unmarshal(e.Value(), &rel)
	now := r.p.cfg.Now()
	var why string
	switch {
	case rel.Hold == "" || rel.Hold != r.state.Hold:
		why = "it names another hold"
	case now.After(rel.Expires):
		why = "it expired at " + rel.Expires.Format(time.RFC3339)
	case n > rel.Held:
		// More rows are missing than were released: wait for a new release.
		r.log.Warn("a release of held deletes does not cover this pass: more deletes than were released; release again", "released", rel.Held, "would_delete", n)
		return false, nil
	default:
		if err := r.p.state.Purge(ctx, key); err != nil {
			return false, fmt.Errorf("consume the release of %s: %w", r.cfg.Name, err)
		}
		return true, nil
	}
	r.log.Warn("discarding a release of held deletes: "+why, "release_hold", rel.Hold, "hold", r.state.Hold)
	if err := r.p.state.Purge(ctx, key); err != nil {
		return false, fmt.Errorf("discard the release of %s: %w", r.cfg.Name, err)
	}
	return false, nil
}

// ReleaseDeletes releases the deletes a report holds now, for at most ttl
// (DefaultReleaseTTL when 0): the next consistent pass that would delete no
// more than are held now applies them. It returns ErrNothingHeld when the
// report holds none, and the release written otherwise.
func ReleaseDeletes(ctx context.Context, js jetstream.JetStream, prefix, report string, ttl time.Duration, now time.Time) (event.Release, error) {
	if ttl <= 0 {
		ttl = DefaultReleaseTTL
	}
	kv, err := statekv.Open(ctx, js, prefix)
	if err != nil {
		return event.Release{}, err
	}
	st, _, err := loadState(ctx, kv, report)
	if err != nil {
		return event.Release{}, err
	}
	if st.Held == 0 || st.Hold == "" {
		return event.Release{}, fmt.Errorf("%s: %w: nothing to release", report, ErrNothingHeld)
	}
	rel := event.Release{Hold: st.Hold, Held: st.Held, At: now.UTC(), Expires: now.Add(ttl).UTC()}
	b, _ := json.Marshal(rel)
	if _, err := kv.Put(ctx, event.AllowDeletesKey(report), b); err != nil {
		return event.Release{}, fmt.Errorf("release the deletes of %s: %w", report, err)
	}
	return rel, nil
}

// ReadRelease returns a report's pending release, if any.
func ReadRelease(ctx context.Context, kv jetstream.KeyValue, report string) (*event.Release, error) {
	e, err := kv.Get(ctx, event.AllowDeletesKey(report))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rel event.Release
	if err := json.Unmarshal(e.Value(), &rel); err != nil {
		return nil, fmt.Errorf("release of %s: %w", report, err)
	}
	return &rel, nil
}
