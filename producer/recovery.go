package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/streamrange"
)

// ConsumerNamePrefix begins the name of every consumer the producer
// creates: "cometstream-producer-snapshot-<bucket>-…" loads a report's
// snapshot index (on the bucket's stream) and "cometstream-producer-recovery-<report>-…" applies the
// stream's tail past its checkpoint. Each is deleted as soon as it has been
// read, so `nats consumer ls` shows one only while a report is recovering.
const ConsumerNamePrefix = "cometstream-producer-"

// recover rebuilds the report's index and state from what the stream says:
// the snapshot bucket, then every event of the report past the checkpoint,
// applied to the bucket. It runs at start and after any failed publish.
func (r *reporter) recover(ctx context.Context) error {
	st, rev, err := loadState(ctx, r.p.state, r.cfg.Name)
	if err != nil {
		return err
	}
	path, params := r.cfg.Comet.Path, r.cfg.Comet.Params
	if path == "" {
		path = comet.DefaultPath
	}
	if rev == 0 {
		st.Key = slices.Clone(r.cfg.Key)
	} else {
		if !slices.Equal(st.Key, r.cfg.Key) {
			return fmt.Errorf("%w: report %s was keyed by %v and is now configured with %v; restore the old key, or delete bucket %s and state key %q to start it over",
				ErrKeyChanged, r.cfg.Name, st.Key, r.cfg.Key, r.snap.bucket, r.cfg.Name)
		}
		// Records from before path and params existed were made with the
		// default path and no filters.
		was := st.Path
		if was == "" {
			was = comet.DefaultPath
		}
		if was != path || !maps.Equal(st.Params, params) {
			return fmt.Errorf("%w: report %s was fetched from path %s with params %v and is now configured with path %s and params %v: that is another report's rows; restore the old settings, or delete bucket %s and state key %q to start it over",
				ErrReportChanged, r.cfg.Name, was, st.Params, path, params, r.snap.bucket, r.cfg.Name)
		}
	}
	st.Path, st.Params, st.Interval = path, maps.Clone(params), r.cfg.Interval.String()
	r.state, r.saved, r.stateRev = st, st, rev
	if err := r.snap.load(ctx, r.p.js); err != nil {
		return err
	}
	if err := r.loadRepeated(ctx); err != nil {
		return err
	}
	r.pendingCreates, r.lastRows, r.confirmedColumns = nil, rowSet{}, nil
	if err := r.checkTail(ctx); err != nil {
		return err
	}

	pub := r.newPublisher()
	last := st.Checkpoint
	tail := false
	applied := 0
	_, err = streamrange.Named(ctx, r.p.js, r.p.cfg.Stream, ConsumerNamePrefix+"recovery-"+r.cfg.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.ReportFilter(r.p.cfg.Prefix, r.cfg.Name)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    st.Checkpoint + 1,
	}, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		last, tail = md.Sequence.Stream, true
		n, err := r.applyTail(ctx, pub, m)
		applied += n
		return err
	})
	if err != nil {
		return fmt.Errorf("recover %s from the stream: %w", r.cfg.Name, err)
	}
	if err := pub.flush(ctx); err != nil {
		return fmt.Errorf("recover %s: %w", r.cfg.Name, err)
	}
	r.state.Checkpoint = last
	if err := r.saveState(ctx); err != nil {
		return err
	}
	// The next batch expects the report's last sequence: the tail's end, or
	// what the stream holds now (the checkpoint's event may have been
	// trimmed away by a limit).
	r.lastSeq = last
	if !tail {
		if r.lastSeq, err = r.lastEventSeq(ctx); err != nil {
			return err
		}
	}
	if applied > 0 {
		r.log.Info("applied events the snapshot had not caught up with", "events", applied, "checkpoint", last)
	}
	r.schema, r.keyer = nil, nil
	if len(r.state.Columns) > 0 {
		if err := r.useColumns(r.state.Columns); err != nil {
			r.log.Warn("the report's last schema does not fit the configured key", "err", err)
		}
	}
	r.recovered = true
	r.p.m.snapshotRows.WithLabelValues(r.cfg.Name).Set(float64(r.snap.live))
	r.p.m.heldDeletes.WithLabelValues(r.cfg.Name).Set(float64(r.state.Held))
	r.p.m.inconsistent.WithLabelValues(r.cfg.Name).Set(float64(r.state.Inconsistent))
	return nil
}

// lastEventSeq asks the stream for the sequence of the report's last event
// (0 when it holds none).
func (r *reporter) lastEventSeq(ctx context.Context) (uint64, error) {
	m, err := r.p.stream.GetLastMsgForSubject(ctx, event.ReportFilter(r.p.cfg.Prefix, r.cfg.Name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event of %s: %w", r.cfg.Name, err)
	}
	return m.Sequence, nil
}

// checkTail says when the stream no longer holds every event past the
// checkpoint. Events of the report published after it by a pass that did
// not finish (the producer was killed) may then be gone: the snapshot may
// lack them, and the next pass publishes those changes again, with their
// original ids. After a clean stop there are none, and nothing is lost.
//
// With retention limits (MaxAge, MaxBytes) the stream starts past an idle
// report's checkpoint as a matter of course: that is said at info level.
// Without them someone removed events, and that is a warning.
func (r *reporter) checkTail(ctx context.Context) error {
	if r.state.Checkpoint == 0 {
		return nil
	}
	info, err := r.p.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	first := info.State.FirstSeq
	if first <= r.state.Checkpoint+1 {
		return nil
	}
	if r.p.cfg.MaxAge > 0 || r.p.cfg.MaxBytes > 0 {
		r.log.Info("the stream's retention has removed events past the report's checkpoint; after a clean stop none of them was the report's, after a crash mid-pass the next pass may publish some changes again, with their original ids",
			"checkpoint", r.state.Checkpoint, "stream_first_seq", first)
		return nil
	}
	r.log.Warn("the stream no longer holds every event past the report's checkpoint (purged, or limited outside cometstream); changes in the gap may be published again, with their original ids",
		"checkpoint", r.state.Checkpoint, "stream_first_seq", first)
	return nil
}

// applyTail applies one event from the stream to the bucket and the state,
// and reports whether it wrote the bucket.
func (r *reporter) applyTail(ctx context.Context, pub *publisher, m jetstream.Msg) (int, error) {
	subj, err := event.ParseSubject(r.p.cfg.Prefix, m.Subject())
	if err != nil {
		r.log.Warn("ignoring a message that is not a cometstream event", "subject", m.Subject())
		return 0, nil
	}
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		r.log.Warn("ignoring an undecodable event", "subject", m.Subject(), "err", err)
		return 0, nil
	}
	if !subj.Row {
		switch subj.Kind {
		case event.KindSchema:
			var d event.SchemaChange
			if err := json.Unmarshal(ev.Data, &d); err == nil {
				r.state.Columns = d.Columns
			}
		case event.KindUnavailable:
			var d event.Unavailable
			if err := json.Unmarshal(ev.Data, &d); err == nil {
				r.state.Unavailable = d.Status
			}
		case event.KindHeld:
			var d event.Held
			if err := json.Unmarshal(ev.Data, &d); err == nil {
				if d.Phase == event.HoldStarted {
					r.state.Held, r.state.Hold = d.WouldDelete, d.Hold
				} else {
					r.state.Held, r.state.Hold, r.state.HeldSince = 0, "", time.Time{}
				}
			}
		}
		return 0, nil
	}
	idx, known := r.snap.find(subj.Token)
	if !known {
		idx = r.snap.add(subj.Token)
	}
	e := &r.snap.entries[idx]
	switch subj.Op {
	case event.OpCreated, event.OpUpdated:
		var d struct {
			After json.RawMessage `json:"after"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || len(d.After) == 0 || d.After[0] != '{' {
			r.log.Warn("ignoring a row event without a row", "subject", m.Subject())
			return 0, nil
		}
		h := event.RowHash(d.After)
		if e.live && e.hash == h {
			return 0, nil
		}
		if !e.live {
			r.snap.live++
		}
		e.live, e.hash = true, h
		return 1, pub.sendKV(ctx, &kvWrite{idx: idx, token: subj.Token, value: d.After, hash: h})
	case event.OpDeleted:
		if !e.live {
			return 0, nil
		}
		e.live = false
		r.snap.live--
		return 1, pub.sendKV(ctx, &kvWrite{idx: idx, token: subj.Token, delete: true})
	}
	return 0, nil
}
