package consumer

import (
	"cmp"
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
	"github.com/cometstream/cometstream/internal/retry"
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
	// Backoff is the wait before each retry of a batch that failed to go
	// in (the last repeats); default 1s, 5s, then 30s.
	Backoff []time.Duration
	// OnFailing, when set, is called each time a batch fails to go in
	// (the store refused it, NATS is gone, ...), with how many times in a
	// row; the batch is retried, backing off, until it does. OnApplied
	// follows once it has.
	OnFailing func(err error, failures int)
	// OnBootstrap, when set, follows each report's bootstrap from its
	// snapshot bucket (for a progress display): it is called when the load
	// starts, after each batch of rows written, and once the rows and the
	// position are committed. Calls are never concurrent.
	OnBootstrap func(BootstrapProgress)
	// Registerer receives the sink's metrics: cometstream_sink_events_total
	// {report,op}, cometstream_sink_position{report} and
	// cometstream_sink_lag_events{report}. Nil keeps them in a private
	// registry, gathered by nobody. Materialize started again on the same
	// Registerer goes on in the same series; two at once on one Registerer
	// would share them (wrap it with prometheus.WrapRegistererWith).
	Registerer prometheus.Registerer
}

// BootstrapProgress is how far the bootstrap of a report from its snapshot
// bucket has come.
type BootstrapProgress struct {
	Report string
	// Loaded is the rows written so far. Total is the keys the bucket held
	// when the load started: a deleted key counts (its delete marker stays),
	// so Loaded may end below it, and keys written meanwhile may take it
	// above.
	Loaded, Total int
	// Done is set on the last call, once the rows and the report's position
	// are committed; Total is then Loaded.
	Done bool
}

type materializer struct {
	cfg       MaterializeConfig
	log       *slog.Logger
	state     jetstream.KeyValue
	positions map[string]uint64
	tables    map[string]*Table
	metrics   *sinkMetrics
	// reports are the reports materialized; read is the sequence of the
	// last event handled; stopRun ends the run with its cause, and stopped
	// says it did, so that no batch is applied after.
	reports []string
	read    uint64
	stopRun context.CancelCauseFunc
	stopped bool
	// failures counts the failures in a row of the batch being applied.
	failures int
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
//
// A store whose position in a report is older than the stream's first
// event may have missed events the stream dropped (its retention): such a
// report is loaded again from its snapshot, at start and whenever the
// reading comes to a range the stream has dropped. It never skips them.
func Materialize(ctx context.Context, cfg MaterializeConfig) error {
	if cfg.Store == nil || cfg.JetStream == nil || cfg.Durable == "" {
		return errors.New("materialize: store, JetStream and durable name are required")
	}
	cfg.Stream = cmp.Or(cfg.Stream, event.DefaultStream)
	cfg.Prefix = cmp.Or(cfg.Prefix, event.DefaultPrefix)
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
	ready := cfg.OnReady
	for restarts := 0; ; restarts++ {
		started := time.Now()
		err := m.run(ctx, ready)
		if !errors.Is(err, errBehindRetention) {
			return err
		}
		// Started again, the store's positions tell which reports missed
		// events, and those are loaded again from their snapshots. A run
		// that lasted is a new start; runs that keep ending at once (a
		// retention shorter than a load) wait longer each time.
		m.cfg.FromStart, ready = false, nil
		if time.Since(started) > time.Minute {
			restarts = 0
		}
		wait := retry.Jitter(min(time.Second<<min(restarts, 6), time.Minute), 0.2)
		m.log.Warn("starting again from the store's positions", "in", wait, "restarts", restarts+1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errBehindRetention stops a run of the materializer whose reading fell
// behind the stream's retention: events it had not read are gone.
var errBehindRetention = errors.New("the stream dropped events the store had not applied")

// run materializes from the store's positions until ctx ends or the
// reading falls behind the stream's retention (errBehindRetention).
func (m *materializer) run(ctx context.Context, onReady func()) error {
	cfg := m.cfg
	var err error
	if m.positions, err = cfg.Store.Positions(ctx); err != nil {
		return err
	}
	if m.tables, err = cfg.Store.Tables(ctx); err != nil {
		return err
	}
	stream, err := cfg.JetStream.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	if err := m.checkStreamIdentity(ctx, stream); err != nil {
		return err
	}
	first := stream.CachedInfo().State.FirstSeq
	reports := cfg.Reports
	if len(reports) == 0 {
		if reports, err = m.knownReports(ctx); err != nil {
			return err
		}
		// And those the store has and the producer no longer keeps state
		// for (its record deleted to start the report over): they are
		// checked against the retention too.
		for r := range m.positions {
			if r != streamKey && !slices.Contains(reports, r) {
				reports = append(reports, r)
			}
		}
	}
	if cfg.FromStart {
		reset := reports
		if len(cfg.Reports) == 0 {
			reset = slices.Sorted(maps.Keys(m.tables))
			reset = append(reset, reports...)
		}
		if err := m.reload(ctx, reset, reports); err != nil {
			return err
		}
	} else {
		behind, err := m.behindRetention(ctx, stream, first, reports)
		if err != nil {
			return err
		}
		for _, r := range behind {
			m.log.Warn("the stream no longer holds events this database has not applied (its retention, nats.max_age or nats.max_bytes, dropped them); loading the report again from its snapshot",
				"report", r, "position", m.positions[r], "stream_first_seq", first)
		}
		if err := m.reload(ctx, behind, reports); err != nil {
			return err
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
		Backoff: cfg.Backoff,
	})
	if err != nil {
		return err
	}
	m.metrics.handled(start-1, m.positions)
	stop := m.metrics.follow(ctx, cfg.JetStream, cfg.Stream, cfg.Prefix)
	defer stop()
	m.read, m.reports, m.stopped = start-1, reports, false
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m.stopRun = cancel
	m.log.Info("consuming the stream", "from_seq", start, "reports", len(reports))
	if onReady != nil {
		onReady()
	}
	err = c.Run(rctx, m.counted)
	if cause := context.Cause(rctx); ctx.Err() == nil && errors.Is(cause, errBehindRetention) {
		return cause
	}
	return err
}

// reload forgets the positions and tables of the reports named, so that
// they are bootstrapped again: a report still materialized is loaded from
// its snapshot (a bulk load replaces its rows only once the new ones are
// in, so until it commits the old rows stay), any other is emptied.
func (m *materializer) reload(ctx context.Context, names, materialized []string) error {
	_, bulk := m.cfg.Store.(BulkLoader)
	for _, r := range names {
		if !bulk || !slices.Contains(materialized, r) {
			if err := m.cfg.Store.Reset(ctx, r); err != nil {
				return err
			}
		}
		delete(m.positions, r)
		delete(m.tables, r)
	}
	return nil
}

// behindRetention lists the reports that may have missed events the
// stream no longer holds, given the stream's first sequence: those whose
// position is before the event ahead of it, unless the producer's state
// shows that every event of the report it published is at or below the
// position (see applied). Their deletes, updates and inserts in the
// dropped range cannot be replayed: their tables must be loaded again from
// the snapshot.
func (m *materializer) behindRetention(ctx context.Context, s jetstream.Stream, first uint64, reports []string) ([]string, error) {
	var behind []string
	for _, r := range reports {
		p, ok := m.positions[r]
		if !ok || r == streamKey || p+1 >= first {
			continue
		}
		done, err := m.applied(ctx, s, r, p, first)
		if err != nil {
			return nil, err
		}
		if !done {
			behind = append(behind, r)
		}
	}
	return behind, nil
}

// notPolled is how many of its intervals a report's state record may go
// unwritten before the report counts as no longer polled.
const notPolled = 3

// applied reports whether every event of a report the stream has dropped
// is at or below the report's position p. The producer's checkpoint is at
// or past every event it had published when it last wrote the state
// record (a pass writes it after its last event, the synced one), so it is
// enough that the checkpoint is at or below p and that the record was
// written after the stream's first event (nothing dropped is newer than
// the record), or that the report is no longer polled (no pass is under
// way whose events the record does not count yet). A report with no state
// record left (deleted to start it over) has not applied.
func (m *materializer) applied(ctx context.Context, s jetstream.Stream, report string, p, first uint64) (bool, error) {
	st, ok, err := m.readState(ctx, report)
	if err != nil || !ok || st.Checkpoint > p {
		return false, err
	}
	if every, err := time.ParseDuration(st.Interval); err == nil && every > 0 && time.Since(st.Updated) > notPolled*every {
		return true, nil
	}
	msg, err := s.GetMsg(ctx, first)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil // dropped meanwhile: not known
	}
	if err != nil {
		return false, fmt.Errorf("stream %s: event %d: %w", m.cfg.Stream, first, err)
	}
	return !st.Updated.Before(msg.Time), nil
}

// droppedBefore tells, for a batch with a gap in the sequences read (at
// its start or within it), whether the stream has dropped events a report
// may have missed: a gap is also the events of reports not materialized,
// so the reports are asked about only when the stream's first event is
// past the gap's start.
func (m *materializer) droppedBefore(ctx context.Context, gap uint64) ([]string, uint64, error) {
	s, err := m.cfg.JetStream.Stream(ctx, m.cfg.Stream)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", m.cfg.Stream, err)
	}
	first := s.CachedInfo().State.FirstSeq
	if first <= gap {
		return nil, first, nil
	}
	behind, err := m.behindRetention(ctx, s, first, m.reports)
	return behind, first, err
}

// firstGap returns the first sequence not read before a batch's events, or
// within them; 0 when the batch follows on from the last event read
// without one.
func firstGap(read uint64, msgs []*Message) uint64 {
	for _, msg := range msgs {
		if msg.Seq > read+1 {
			return read + 1
		}
		read = msg.Seq
	}
	return 0
}

// streamKey is the pseudo-report under which the store remembers which
// stream its positions belong to (when it was created); "#" cannot start a
// report name.
const streamKey = "#stream"

// checkStreamIdentity resets the store when its positions belong to another
// stream (recreated, or another deployment's): they would mean nothing.
func (m *materializer) checkStreamIdentity(ctx context.Context, s jetstream.Stream) error {
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
	return statekv.Reports(ctx, m.cfg.JetStream, m.state)
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

// renamed returns the table with its columns named as cols names them, each
// keeping its type: COMET may rename a column, and a store may show the
// names (PostgreSQL's column comments).
func renamed(t *Table, cols []event.Column) *Table {
	out := t
	for i, c := range t.Columns {
		j := slices.IndexFunc(cols, func(n event.Column) bool { return n.Key == c.Key })
		if j < 0 || cols[j].Name == c.Name {
			continue
		}
		if out == t {
			out = &Table{Report: t.Report, Columns: slices.Clone(t.Columns), Key: t.Key}
		}
		out.Columns[i].Name = cols[j].Name
	}
	return out
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

// counted is handle, counting its failures in a row.
func (m *materializer) counted(ctx context.Context, msgs []*Message) error {
	err := m.handle(ctx, msgs)
	switch {
	case err != nil:
		m.failures++
		m.metrics.failures.Set(float64(m.failures))
		if m.failures == FailingAfter {
			m.log.Error("the sink cannot apply a batch; it retries it, backing off, until the cause is fixed, and reports not ready meanwhile",
				"first_seq", msgs[0].Seq, "failures", m.failures, "err", err)
		}
		if m.cfg.OnFailing != nil {
			m.cfg.OnFailing(err, m.failures)
		}
	case m.failures > 0:
		if m.failures >= FailingAfter {
			m.log.Info("the sink applies batches again", "after_failures", m.failures)
		}
		m.failures = 0
		m.metrics.failures.Set(0)
	}
	return err
}

// FailingAfter is how many failures in a row of one batch make a sink
// failing rather than briefly held up (about six seconds of retries): it
// says so in the log, and the sink command reports not ready.
const FailingAfter = 3

// handle applies a batch of events in one transaction with their positions.
func (m *materializer) handle(ctx context.Context, msgs []*Message) error {
	if m.stopped {
		return nil // the run is ending: the next reads the batch again
	}
	if gap := firstGap(m.read, msgs); gap > 0 {
		behind, first, err := m.droppedBefore(ctx, gap)
		if err != nil {
			return err
		}
		if len(behind) > 0 {
			m.log.Warn("the stream dropped events before this sink applied them (its retention, nats.max_age or nats.max_bytes, is shorter than the sink's lag); starting again from the store's positions",
				"reports", behind, "read_seq", m.read, "stream_first_seq", first)
			m.stopRun(errBehindRetention)
			m.stopped = true
			return nil // nothing of the batch applied: the next run reads it again
		}
	}
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
			if !slices.Contains(m.reports, r) {
				m.reports = append(m.reports, r)
			}
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
			t = renamed(t.merged(msg.Schema.Columns), msg.Schema.Columns)
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
	m.read = max(m.read, lastSeq(msgs))
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
