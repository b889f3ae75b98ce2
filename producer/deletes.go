package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/cometstream/cometstream/event"
)

// deletes handles the rows missing from a consistent pass: a row missing
// from the last consistent pass too is deleted, one missing for the first
// time becomes a suspect. It returns how many deletes are held back and how
// many suspects wait for the next pass.
func (ps *pass) deletes(ctx context.Context) (held, unconfirmed int, err error) {
	r := ps.r
	var missing, confirmed []string
	for i := range r.snap.entries {
		if e := &r.snap.entries[i]; e.live && e.seen != ps.n {
			token := r.snap.token(int32(i))
			missing = append(missing, token)
			if _, ok := r.suspects[token]; ok {
				confirmed = append(confirmed, token)
			}
		}
	}
	r.suspects = make(map[string]struct{}, len(missing))
	for _, t := range missing {
		r.suspects[t] = struct{}{}
	}
	unconfirmed = len(missing) - len(confirmed)
	if len(confirmed) == 0 {
		ps.releaseHold()
		return 0, unconfirmed, nil
	}
	slices.Sort(confirmed) // a deterministic order for the stream
	rowsBefore := r.snap.live
	limit := r.cfg.MaxDeleteFraction * float64(rowsBefore)
	if float64(len(confirmed)) > limit {
		allowed, err := ps.allowed(ctx)
		if err != nil {
			return 0, 0, err
		}
		if !allowed {
			return len(confirmed), unconfirmed, ps.hold(ctx, len(confirmed), rowsBefore)
		}
		r.log.Warn("releasing held deletes on the operator's request", "deletes", len(confirmed), "rows", rowsBefore)
	}
	for _, token := range confirmed {
		if err := ps.delete(ctx, token); err != nil {
			return 0, 0, err
		}
	}
	ps.releaseHold()
	return 0, unconfirmed, nil
}

func (ps *pass) releaseHold() {
	if ps.r.state.Held != 0 {
		ps.r.log.Info("deletes no longer held")
	}
	ps.r.state.Held = 0
	ps.r.p.m.heldDeletes.WithLabelValues(ps.r.cfg.Name).Set(0)
}

// hold publishes a held event when the hold starts or its size changes.
func (ps *pass) hold(ctx context.Context, n, rowsBefore int) error {
	r := ps.r
	r.p.m.heldDeletes.WithLabelValues(r.cfg.Name).Set(float64(n))
	if r.state.Held == n {
		return nil
	}
	id := event.ID(r.cfg.Name, string(event.KindHeld), strconv.FormatUint(r.state.Checkpoint, 10), strconv.Itoa(n))
	data := event.Held{Report: r.cfg.Name, WouldDelete: n, RowsBefore: rowsBefore, Threshold: r.cfg.MaxDeleteFraction}
	if err := ps.report(ctx, event.KindHeld, id, data); err != nil {
		return err
	}
	r.state.Held = n
	r.log.Error("deletes held: this pass would delete more than max_delete_fraction of the report; run `cometstream allow-deletes` to release them",
		"would_delete", n, "rows", rowsBefore, "max_delete_fraction", r.cfg.MaxDeleteFraction)
	return nil
}

// allowed reports whether an operator released this report's held deletes,
// consuming the release.
func (ps *pass) allowed(ctx context.Context) (bool, error) {
	r := ps.r
	if r.allowOnce {
		r.allowOnce = false
		return true, nil
	}
	key := event.AllowDeletesKey(r.cfg.Name)
	if _, err := r.p.state.Get(ctx, key); err != nil {
		return false, nil
	}
	if err := r.p.state.Purge(ctx, key); err != nil {
		return false, fmt.Errorf("consume %s: %w", key, err)
	}
	return true, nil
}

// delete publishes a deleted event for a row missing from two consistent passes.
func (ps *pass) delete(ctx context.Context, token string) error {
	r := ps.r
	idx, _ := r.snap.find(token)
	e := &r.snap.entries[idx]
	before, err := r.snap.get(ctx, token)
	if err != nil {
		return err
	}
	id := event.ID(r.cfg.Name, token, string(event.OpDeleted), strconv.FormatUint(e.rev, 10), "")
	data := (&event.RowEvent{
		ID: id, Source: r.source, Token: token, Time: r.p.cfg.Now(), Report: r.cfg.Name, Op: event.OpDeleted, Sync: ps.sync,
		Key: keyFromRow(r.cfg.Key, before), Before: before,
	}).Append(nil)
	e.live = false
	r.snap.live--
	delete(r.suspects, token)
	ps.deleted++
	r.p.m.events.WithLabelValues(r.cfg.Name, string(event.OpDeleted)).Inc()
	r.p.m.kvWrites.WithLabelValues(r.cfg.Name).Inc()
	return ps.pub.event(ctx, event.RowSubject(r.p.cfg.Prefix, r.cfg.Name, event.OpDeleted, token), id, data, &kvWrite{idx: idx, token: token, delete: true})
}

// keyFromRow builds a deleted event's key object from the stored row.
func keyFromRow(key []string, row []byte) []byte {
	if len(key) == 1 && key[0] == event.ContentKey {
		return row
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(row, &m); err != nil {
		return []byte("{}")
	}
	cols := slices.Clone(key)
	slices.Sort(cols)
	b := []byte{'{'}
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendString(b, c)
		b = append(b, ':')
		if v, ok := m[c]; ok {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}
