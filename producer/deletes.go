package producer

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/cometstream/cometstream/event"
)

// deletes handles the rows missing from a consistent pass: a row missing
// from the last consistent pass too is deleted, one missing for the first
// time becomes a suspect. With confirm unset (a content-keyed pass that saw
// other rows than the last) every row missing is a suspect again and none
// is deleted. It returns how many deletes are held back and how many
// suspects wait for the next pass.
func (ps *pass) deletes(ctx context.Context, confirm bool) (held, unconfirmed int, err error) {
	r := ps.r
	var missing, confirmed []string
	for i := range r.snap.entries {
		if e := &r.snap.entries[i]; e.live && e.seen != ps.n {
			token := r.snap.token(int32(i))
			missing = append(missing, token)
			if _, ok := r.suspects[token]; ok && confirm {
				confirmed = append(confirmed, token)
			}
		}
	}
	r.suspects = make(map[string]struct{}, len(missing))
	for _, t := range missing {
		r.suspects[t] = struct{}{}
	}
	if !confirm {
		// Nothing is decided: a hold, if any, stands as it was.
		return r.state.Held, len(missing), nil
	}
	unconfirmed = len(missing) - len(confirmed)
	slices.Sort(confirmed) // a deterministic order for the stream
	rowsBefore := r.snap.live
	released := false
	if float64(len(confirmed)) > r.cfg.MaxDeleteFraction*float64(rowsBefore) {
		if released, err = ps.released(ctx, len(confirmed)); err != nil {
			return 0, 0, err
		}
		if !released {
			return len(confirmed), unconfirmed, ps.hold(ctx, len(confirmed), rowsBefore)
		}
		r.log.Warn("applying held deletes on the operator's release", "deletes", len(confirmed), "rows", rowsBefore, "hold", r.state.Hold)
	}
	for _, token := range confirmed {
		if err := ps.delete(ctx, token); err != nil {
			return 0, 0, err
		}
	}
	phase := event.HoldEnded
	if released {
		phase = event.HoldReleased
	}
	return 0, unconfirmed, ps.endHold(ctx, phase, len(confirmed), rowsBefore)
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
