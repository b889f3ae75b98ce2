package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// Database is a sink's database as verify reads it; the consumer/sqlite
// and consumer/postgres stores are ones.
type Database interface {
	// Positions returns, per report, the stream sequence of the last
	// event applied (names starting with "#" are the sink's own).
	Positions(ctx context.Context) (map[string]uint64, error)
	// Tables returns the layout of every report table.
	Tables(ctx context.Context) (map[string]*consumer.Table, error)
	// ReadRows returns a report's rows, values in their event form, and
	// its position, read in one transaction; a content-keyed table's rows
	// carry their token in Config.TokenColumn.
	ReadRows(ctx context.Context, report string) ([]event.Row, uint64, error)
}

// Config configures Run.
type Config struct {
	JetStream jetstream.JetStream
	// Stream and Prefix are the producer's (defaults event.DefaultStream
	// and event.DefaultPrefix).
	Stream, Prefix string
	DB             Database
	// TokenColumn is the column of a content-keyed table holding the row
	// key token.
	TokenColumn string
	// ExactNumbers compares numbers exactly, for a database that keeps
	// every digit.
	ExactNumbers bool
	// Reports are the reports to verify; empty means every report the
	// database holds.
	Reports []string
	// Timeout bounds how long a report waits for the sink to reach the
	// stream's position; 0 does not wait.
	Timeout time.Duration
	// Attempts bounds the comparisons of one report (see the package
	// documentation); default 5.
	Attempts int
	// Poll is how often the sink's position is read while waiting;
	// default 100ms.
	Poll   time.Duration
	Logger *slog.Logger
}

// Result is the verification of one report.
type Result struct {
	Report string
	// Position is the sink's position the rows were compared at, or where
	// the sink stood when it was behind.
	Position uint64
	// Stream is the report's last stream sequence the expected rows were
	// built at (the sink's position is compared to it).
	Stream uint64
	// Key lists the report's key columns (["*"]: content keyed).
	Key []string
	// Rows counts the rows compared.
	Rows int
	// Diffs are the rows that differ, sorted by kind and key.
	Diffs []Difference
	// Err says why the report could not be compared: it wraps ErrBehind,
	// ErrUnsettled, ErrNotMaterialized or ErrNoKey. Diffs is empty then.
	Err error
}

// Equal reports whether the report was compared and no row differs.
func (r *Result) Equal() bool { return r.Err == nil && len(r.Diffs) == 0 }

// parallel bounds the reports verified at once.
const parallel = 4

// Run verifies the reports of cfg.DB against the producer's snapshot and
// stream, and returns one Result per report, in order of name. Its error is
// for what stops the verification itself: NATS or the database failing,
// the stream missing, ErrNoReports.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.JetStream == nil || cfg.DB == nil {
		return nil, errors.New("verify: JetStream and database are required")
	}
	cfg.Stream = cmp.Or(cfg.Stream, event.DefaultStream)
	cfg.Prefix = cmp.Or(cfg.Prefix, event.DefaultPrefix)
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	for _, r := range cfg.Reports {
		if !event.NameRE.MatchString(r) {
			return nil, fmt.Errorf("verify: report %q must match %s", r, event.NameRE)
		}
	}
	src, err := newSource(ctx, cfg.JetStream, cfg.Stream, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	positions, err := cfg.DB.Positions(ctx)
	if err != nil {
		return nil, err
	}
	tables, err := cfg.DB.Tables(ctx)
	if err != nil {
		return nil, err
	}
	reports := slices.Clone(cfg.Reports)
	if len(reports) == 0 {
		names := map[string]bool{}
		for r := range tables {
			names[r] = true
		}
		for r := range positions {
			if !strings.HasPrefix(r, "#") { // the sink's own names
				names[r] = true
			}
		}
		if reports = slices.Sorted(maps.Keys(names)); len(reports) == 0 {
			return nil, ErrNoReports
		}
	}
	slices.Sort(reports)
	reports = slices.Compact(reports)
	v := &verifier{cfg: cfg, src: src, tables: tables, log: cfg.Logger}
	results := make([]Result, len(reports))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, r := range reports {
		results[i] = Result{Report: r}
		_, hasTable := tables[r]
		if _, hasPos := positions[r]; !hasTable && !hasPos {
			results[i].Err = ErrNotMaterialized
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			res, err := v.report(ctx, r)
			if err != nil {
				cancel(err)
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

type verifier struct {
	cfg    Config
	src    *source
	tables map[string]*consumer.Table
	log    *slog.Logger
}

// report verifies one report, comparing again (up to cfg.Attempts) while
// a comparison cannot stand.
func (v *verifier) report(ctx context.Context, report string) (Result, error) {
	deadline := time.Now().Add(v.cfg.Timeout)
	var retry error
	for n := 1; n <= v.cfg.Attempts; n++ {
		res, why, err := v.attempt(ctx, report, deadline, n == v.cfg.Attempts)
		if err != nil || why == nil {
			return res, err
		}
		v.log.Debug("comparing again", "report", report, "attempt", n, "reason", why)
		retry = why
	}
	return Result{Report: report, Err: fmt.Errorf("%w after %d attempts: %w", ErrUnsettled, v.cfg.Attempts, retry)}, nil
}

// attempt builds the expected rows at the stream's position, waits for the
// sink to reach it, and compares. why says why the comparison cannot stand
// and the report must be compared again; err is a failure of NATS or the
// database. On the final attempt differences are reported as they are.
func (v *verifier) attempt(ctx context.Context, report string, deadline time.Time, final bool) (res Result, why, err error) {
	res = Result{Report: report}
	// The order matters: the checkpoint before the bucket (which reflects
	// at least it), the stream's end after (the bucket reflects nothing
	// past it).
	st, err := v.src.readState(ctx, report)
	if err != nil {
		return res, nil, err
	}
	want, err := v.src.bucket(ctx, report)
	if err != nil {
		return res, nil, err
	}
	last, err := v.src.lastSeq(ctx, report)
	if err != nil {
		return res, nil, err
	}
	// The checkpoint is never past the report's last event, unless the
	// stream lost that event to its limits.
	target := max(st.Checkpoint, last)
	if err := v.src.apply(ctx, report, want, st.Checkpoint, target); err != nil {
		if errors.Is(err, ErrTrimmed) {
			return res, err, nil
		}
		return res, nil, err
	}
	res.Stream = target

	pos, err := v.waitFor(ctx, report, target, deadline)
	if err != nil {
		return res, nil, err
	}
	if pos < target {
		res.Position, res.Err = pos, ErrBehind
		return res, nil, nil
	}
	got, pos, err := v.cfg.DB.ReadRows(ctx, report)
	if err != nil {
		return res, nil, err
	}
	switch {
	case pos < target:
		return res, fmt.Errorf("the sink's position went back to %d from %d or more (rebuilt?)", pos, target), nil
	case pos > target:
		// The sink applied more since: so do the expected rows.
		if err := v.src.apply(ctx, report, want, target, pos); err != nil {
			if errors.Is(err, ErrTrimmed) {
				return res, err, nil
			}
			return res, nil, err
		}
	}
	res.Position = pos

	layout, ok := v.layout(report, st)
	if !ok {
		if len(want) > 0 || len(got) > 0 {
			res.Err = ErrNoKey
		}
		return res, nil, nil
	}
	res.Key = layout.Key
	res.Diffs, res.Rows = Compare(layout, want, got)
	if len(res.Diffs) > 0 && !final {
		// A sink that bootstrapped from the bucket holds what the bucket
		// held, possibly past its position, until it has applied the events
		// after: differences then are checked again once it has caught up.
		now, err := v.src.lastSeq(ctx, report)
		if err != nil {
			return res, nil, err
		}
		if now > pos {
			return res, fmt.Errorf("%d rows differ at position %d while the stream is at %d", len(res.Diffs), pos, now), nil
		}
	}
	return res, nil, nil
}

// waitFor waits until the sink's position of a report reaches seq, or the
// deadline passes, and returns the last position read.
func (v *verifier) waitFor(ctx context.Context, report string, seq uint64, deadline time.Time) (uint64, error) {
	logged := false
	for {
		positions, err := v.cfg.DB.Positions(ctx)
		if err != nil {
			return 0, err
		}
		pos := positions[report]
		if pos >= seq || !time.Now().Before(deadline) {
			return pos, nil
		}
		if !logged {
			v.log.Info("waiting for the sink to catch up", "report", report, "position", pos, "stream", seq)
			logged = true
		}
		select {
		case <-time.After(min(v.cfg.Poll, time.Until(deadline))):
		case <-ctx.Done():
			return pos, ctx.Err()
		}
	}
}

// layout says how a report's rows are keyed and typed: the producer's
// state record first, the database's table layout where it says nothing.
func (v *verifier) layout(report string, st event.ReportState) (Layout, bool) {
	l := Layout{Key: st.Key, Columns: st.Columns, TokenColumn: v.cfg.TokenColumn, ExactNumbers: v.cfg.ExactNumbers}
	if t := v.tables[report]; t != nil {
		if len(l.Key) == 0 {
			l.Key = t.Key
		}
		if len(l.Columns) == 0 {
			l.Columns = t.Columns
		}
	}
	return l, len(l.Key) > 0
}
