package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/statekv"
)

// MaterializeConfig configures Materialize.
type MaterializeConfig struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's (defaults COMET and comet).
	Stream, Prefix string
	// Durable names the sink's consumer on the server (the prefix of an
	// ordered consumer's name, with a suffix per run: the sink reads from
	// the position its store keeps, so a restart never depends on
	// server-side state; consumers of runs gone away expire when idle).
	Durable string
	// Reports limits the reports materialized; empty means all.
	Reports []string
	// FromStart rebuilds the selected reports from the snapshot.
	FromStart bool
	Store     Store
	// BatchSize bounds the events applied in one transaction; default 1000.
	// Batches take what has arrived, so a large bound adds no latency.
	BatchSize int
	Logger    *slog.Logger
	// OnApplied, when set, is called after each committed batch with the
	// messages it applied (for display and latency measurement).
	OnApplied func([]*Message)
	// OnReady, when set, is called once the bootstrap is done and the
	// stream is being consumed.
	OnReady func()
	// Registerer receives the sink's metrics: cometstream_sink_events_total
	// {report,op}, cometstream_sink_position{report} and
	// cometstream_sink_lag_events{report}. Nil keeps them in a private
	// registry, gathered by nobody. Materialize started again on the same
	// Registerer goes on in the same series; two at once on one Registerer
	// would share them (wrap it with prometheus.WrapRegistererWith).
	Registerer prometheus.Registerer
}

type materializer struct {
	cfg       MaterializeConfig
	log       *slog.Logger
	state     jetstream.KeyValue
	positions map[string]uint64
	tables    map[string]*Table
	metrics   *sinkMetrics
}

// Materialize keeps cfg.Store equal to the producer's snapshot until ctx
// ends.
//
// A report the store has no position for is bootstrapped from its snapshot
// bucket: the producer's state record says up to which stream sequence (the
// checkpoint) the bucket reflects the stream, so the store loads the bucket
// and records that sequence as its position. The stream is then consumed
// from the lowest position onwards; an event at or below its report's
// position is skipped, and every other event is applied in the same
// transaction as the new position. Reading the bucket is not atomic with
// reading the checkpoint, but every event past the checkpoint is replayed
// and carries a whole row (or a delete), so the store converges to the
// stream whatever the bucket held while it was read. This works however
// little history the stream keeps, as long as it still holds each report's
// events past its checkpoint — the producer advances checkpoints within a
// pass.
func Materialize(ctx context.Context, cfg MaterializeConfig) error {
	if cfg.Store == nil || cfg.JetStream == nil || cfg.Durable == "" {
		return errors.New("materialize: store, JetStream and durable name are required")
	}
	if cfg.Stream == "" {
		cfg.Stream = event.DefaultStream
	}
	if cfg.Prefix == "" {
		cfg.Prefix = event.DefaultPrefix
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &materializer{cfg: cfg, log: cfg.Logger}
	var err error
	if m.metrics, err = newSinkMetrics(cfg.Registerer, cfg.Reports); err != nil {
		return fmt.Errorf("materialize: metrics: %w", err)
	}
	if err := waitForStream(ctx, cfg.JetStream, cfg.Stream, cfg.Logger); err != nil {
		return err
	}
	if m.state, err = statekv.Open(ctx, cfg.JetStream, cfg.Prefix); errors.Is(err, statekv.ErrNoBucket) {
		m.state = nil // the producer has not run yet
	} else if err != nil {
		return err
	}
	if m.positions, err = cfg.Store.Positions(ctx); err != nil {
		return err
	}
	if m.tables, err = cfg.Store.Tables(ctx); err != nil {
		return err
	}
	if err := m.checkStreamIdentity(ctx); err != nil {
		return err
	}
	reports := cfg.Reports
	if len(reports) == 0 {
		if reports, err = m.knownReports(ctx); err != nil {
			return err
		}
	}
	if cfg.FromStart {
		reset := reports
		if len(cfg.Reports) == 0 {
			reset = slices.Sorted(maps.Keys(m.tables))
			reset = append(reset, reports...)
		}
		for _, r := range reset {
			if err := cfg.Store.Reset(ctx, r); err != nil {
				return err
			}
			delete(m.positions, r)
			delete(m.tables, r)
		}
	}
	for _, r := range reports {
		if _, ok := m.positions[r]; !ok {
			if err := m.bootstrap(ctx, r); err != nil {
				return err
			}
		}
	}
	start := uint64(0)
	for _, r := range reports {
		if r == streamKey {
			continue
		}
		if p, ok := m.positions[r]; ok && (start == 0 || p+1 < start) {
			start = p + 1
		}
	}
	if start == 0 {
		start = 1
	}
	// An ordered consumer from the store's own position: in stream order,
	// with no gaps and nothing redelivered out of order, which skipping by
	// position relies on. The store, not the server, keeps the cursor.
	c, err := NewReader(ReaderConfig{
		JetStream: cfg.JetStream, Stream: cfg.Stream, Prefix: cfg.Prefix, Name: cfg.Durable,
		Filter: Filter{Reports: cfg.Reports}, StartSeq: start, BatchSize: cfg.BatchSize, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	m.metrics.handled(start-1, m.positions)
	stop := m.metrics.follow(ctx, cfg.JetStream, cfg.Stream, cfg.Prefix)
	defer stop()
	m.log.Info("consuming the stream", "from_seq", start, "reports", len(reports))
	if cfg.OnReady != nil {
		cfg.OnReady()
	}
	return c.Run(ctx, m.handle)
}

// streamKey is the pseudo-report under which the store remembers which
// stream its positions belong to (when it was created); "#" cannot start a
// report name.
const streamKey = "#stream"

// checkStreamIdentity resets the store when its positions belong to another
// stream (recreated, or another deployment's): they would mean nothing.
func (m *materializer) checkStreamIdentity(ctx context.Context) error {
	s, err := m.cfg.JetStream.Stream(ctx, m.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", m.cfg.Stream, err)
	}
	created := uint64(s.CachedInfo().Created.UnixNano())
	stored, ok := m.positions[streamKey]
	if ok && stored == created {
		return nil
	}
	if len(m.positions) > 0 && (!ok || stored != created) {
		m.log.Warn("the database was filled from another stream (recreated, or another deployment's); rebuilding it", "stream", m.cfg.Stream)
		for r := range m.positions {
			if r == streamKey {
				continue
			}
			if err := m.cfg.Store.Reset(ctx, r); err != nil {
				return err
			}
		}
		for r := range m.tables {
			if err := m.cfg.Store.Reset(ctx, r); err != nil {
				return err
			}
		}
		clear(m.positions)
	}
	if err := m.cfg.Store.Apply(ctx, &Batch{Positions: map[string]uint64{streamKey: created}}); err != nil {
		return err
	}
	m.positions[streamKey] = created
	return nil
}

// knownReports lists the reports the producer keeps state for.
func (m *materializer) knownReports(ctx context.Context) ([]string, error) {
	if m.state == nil {
		return nil, nil
	}
	return statekv.Reports(ctx, m.state)
}

// readState reads a report's state record; ok is false when there is none.
func (m *materializer) readState(ctx context.Context, report string) (st event.ReportState, ok bool, err error) {
	if m.state == nil {
		kv, err := statekv.Open(ctx, m.cfg.JetStream, m.cfg.Prefix)
		if errors.Is(err, statekv.ErrNoBucket) {
			return st, false, nil
		}
		if err != nil {
			return st, false, err
		}
		m.state = kv
	}
	st, rev, err := statekv.Report(ctx, m.state, report)
	return st, rev != 0, err
}

// bootstrap loads a report from its snapshot bucket and records the
// checkpoint the bucket stood at as the report's position.
func (m *materializer) bootstrap(ctx context.Context, report string) error {
	for attempt := 1; ; attempt++ {
		st, ok, err := m.readState(ctx, report)
		if err != nil {
			return err
		}
		if !ok || len(st.Columns) == 0 {
			// The producer has not checkpointed this report yet: every event
			// it published is still in the stream after sequence 0.
			m.positions[report] = 0
			return m.cfg.Store.Reset(ctx, report)
		}
		if err := m.cfg.Store.Reset(ctx, report); err != nil {
			return err
		}
		table := &Table{Report: report, Columns: st.Columns, Key: st.Key}
		if err := m.cfg.Store.Apply(ctx, &Batch{Changes: []Change{{Kind: ChangeTable, Table: table}}}); err != nil {
			return err
		}
		rows, err := m.loadBucket(ctx, report, table)
		if err != nil {
			return err
		}
		after, _, err := m.readState(ctx, report)
		if err != nil {
			return err
		}
		if !slices.Equal(after.Columns, st.Columns) && attempt < 5 {
			m.log.Info("report schema changed while bootstrapping; starting over", "report", report)
			continue
		}
		if err := m.cfg.Store.Apply(ctx, &Batch{Positions: map[string]uint64{report: st.Checkpoint}}); err != nil {
			return err
		}
		m.positions[report], m.tables[report] = st.Checkpoint, table
		m.log.Info("bootstrapped from the snapshot", "report", report, "rows", rows, "checkpoint", st.Checkpoint)
		return nil
	}
}

// loadBucket upserts every row of a report's snapshot bucket.
func (m *materializer) loadBucket(ctx context.Context, report string, table *Table) (int, error) {
	const chunk = 5000
	var batch []Change
	rows := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := m.cfg.Store.Apply(ctx, &Batch{Changes: batch})
		batch = batch[:0]
		return err
	}
	err := ReadBucket(ctx, m.cfg.JetStream, m.cfg.Prefix, report, func(token string, row event.Row) error {
		if t, grew := withColumns(table, row); grew {
			*table = *t
			batch = append(batch, Change{Kind: ChangeTable, Table: t})
		}
		batch = append(batch, Change{Kind: ChangeUpsert, Table: table, Token: token, Row: withNulls(table, row)})
		rows++
		if len(batch) >= chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return rows, fmt.Errorf("bootstrap %s: %w", report, err)
	}
	return rows, flush()
}

// withColumns returns the table extended with any column the row has and
// the table lacks (typed by the value), and whether it grew.
func withColumns(t *Table, row event.Row) (*Table, bool) {
	var extra []event.Column
	for k, v := range row {
		if _, ok := t.Column(k); !ok {
			typ := event.TypeString
			if v.Kind == event.Number {
				typ = event.TypeNumber
			}
			extra = append(extra, event.Column{Key: k, Name: k, Type: typ})
		}
	}
	if len(extra) == 0 {
		return t, false
	}
	slices.SortFunc(extra, func(a, b event.Column) int { return strings.Compare(a.Key, b.Key) })
	return t.merged(extra), true
}

// withNulls returns the row with null for every column of the table it
// lacks: a column the report dropped holds null in rows written since,
// whatever the store does with absent columns.
func withNulls(t *Table, row event.Row) event.Row {
	if len(row) >= len(t.Columns) {
		return row
	}
	out := make(event.Row, len(t.Columns))
	for _, c := range t.Columns {
		out[c.Key] = row[c.Key]
	}
	for k, v := range row {
		out[k] = v
	}
	return out
}

// handle applies a batch of events in one transaction with their positions.
func (m *materializer) handle(ctx context.Context, msgs []*Message) error {
	positions := map[string]uint64{}
	tables := map[string]*Table{}
	b := &Batch{Positions: positions}
	applied := m.metrics.batch()
	commit := func() error {
		if len(b.Changes) == 0 && len(positions) == 0 {
			return nil
		}
		if err := m.cfg.Store.Apply(ctx, b); err != nil {
			return err
		}
		applied.committed()
		maps.Copy(m.positions, positions)
		maps.Copy(m.tables, tables)
		clear(positions)
		clear(tables)
		b.Changes = nil
		return nil
	}
	table := func(r string) *Table {
		if t, ok := tables[r]; ok {
			return t
		}
		return m.tables[r]
	}
	for _, msg := range msgs {
		subj, err := event.ParseSubject(m.cfg.Prefix, msg.Subject)
		if err != nil {
			m.log.Warn("skipping a message outside the event layout", "subject", msg.Subject)
			continue
		}
		r := subj.Report
		pos, known := positions[r]
		if !known {
			pos, known = m.positions[r]
		}
		if !known {
			// A report never seen: load its snapshot first, in order.
			if err := commit(); err != nil {
				return err
			}
			if err := m.bootstrap(ctx, r); err != nil {
				return err
			}
			pos = m.positions[r]
		}
		if msg.Seq <= pos {
			continue // applied before: a redelivery or a replay
		}
		t := table(r)
		switch {
		case msg.Schema != nil:
			if t == nil {
				key, err := m.keyOf(ctx, r, nil)
				if err != nil {
					return err
				}
				t = &Table{Report: r, Key: key}
			}
			t = t.merged(msg.Schema.Columns)
			tables[r] = t
			b.Changes = append(b.Changes, Change{Kind: ChangeTable, Table: t})
		case msg.Row != nil:
			if t == nil {
				key, err := m.keyOf(ctx, r, msg.Row.Key)
				if err != nil {
					return err
				}
				t = &Table{Report: r, Key: key}
				tables[r] = t
				b.Changes = append(b.Changes, Change{Kind: ChangeTable, Table: t})
			}
			if msg.Row.After != nil {
				if t2, grew := withColumns(t, msg.Row.After); grew {
					t = t2
					tables[r] = t
					b.Changes = append(b.Changes, Change{Kind: ChangeTable, Table: t})
				}
				b.Changes = append(b.Changes, Change{Kind: ChangeUpsert, Table: t, Token: msg.Event.Subject, Row: withNulls(t, msg.Row.After)})
			} else {
				b.Changes = append(b.Changes, Change{Kind: ChangeDelete, Table: t, Token: msg.Event.Subject, Row: msg.Row.Key})
			}
		}
		positions[r] = msg.Seq
		applied.add(subj)
	}
	if err := commit(); err != nil {
		return err
	}
	m.metrics.handled(lastSeq(msgs), m.positions)
	if m.cfg.OnApplied != nil {
		m.cfg.OnApplied(msgs)
	}
	return nil
}

// keyOf finds a report's key columns: from its state record, waiting a
// moment for a producer that has just published its first events, else from
// a row event's key object.
func (m *materializer) keyOf(ctx context.Context, report string, rowKey event.Row) ([]string, error) {
	for range 20 {
		st, ok, err := m.readState(ctx, report)
		if err != nil {
			return nil, err
		}
		if ok && len(st.Key) > 0 {
			return st.Key, nil
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if rowKey == nil {
		return nil, fmt.Errorf("the key of report %s is not known yet (no producer state)", report)
	}
	return slices.Sorted(maps.Keys(rowKey)), nil
}

// waitForStream waits until the producer has created the stream, so a sink
// can be started first.
func waitForStream(ctx context.Context, js jetstream.JetStream, name string, log *slog.Logger) error {
	for logged := false; ; logged = true {
		_, err := js.Stream(ctx, name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if !logged {
			log.Info("waiting for the producer to create the stream", "stream", name)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
