package consumer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/jsonscan"
)

// bootstrap loads a report from its snapshot bucket and records the
// checkpoint the bucket stood at as the report's position.
func (m *materializer) bootstrap(ctx context.Context, report string) error {
	for attempt := 1; ; attempt++ {
		st, ok, err := m.readState(ctx, report)
		if err != nil {
			return err
		}
		if !ok || len(st.Columns) == 0 {
			// The producer has no rows of this report in a snapshot (none
			// checkpointed yet, or COMET refused its key from the first
			// pass): its events are read from the stream's start, which is
			// all there is of them.
			stream, err := m.cfg.JetStream.Stream(ctx, m.cfg.Stream)
			if err != nil {
				return fmt.Errorf("stream %s: %w", m.cfg.Stream, err)
			}
			m.positions[report] = max(stream.CachedInfo().State.FirstSeq, 1) - 1
			return m.cfg.Store.Reset(ctx, report)
		}
		started := time.Now()
		table := &Table{Report: report, Columns: st.Columns, Key: st.Key}
		ld, err := m.beginLoad(ctx, table)
		if err != nil {
			return err
		}
		table, rows, err := m.loadBucket(ctx, table, ld)
		var after event.ReportState
		if err == nil {
			after, _, err = m.readState(ctx, report)
		}
		if err != nil {
			// Rolled back even when ctx has ended: the load holds the store.
			return errors.Join(err, ld.Abort(context.WithoutCancel(ctx)))
		}
		if !slices.Equal(after.Columns, st.Columns) && attempt < 5 {
			m.log.Info("report schema changed while bootstrapping; starting over", "report", report)
			if err := ld.Abort(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			continue
		}
		// The position is the checkpoint: only the events up to the checkpoint read before the bucket are
		// sure to be in it (the producer writes a pass's snapshot rows as
		// its acknowledgements come, up to the pass's end).
		pos := st.Checkpoint
		if err := ld.Commit(ctx, map[string]uint64{report: pos}); err != nil {
			return err
		}
		m.positions[report], m.tables[report] = pos, table
		m.progress(BootstrapProgress{Report: report, Loaded: rows, Total: rows, Done: true})
		took := time.Since(started)
		m.log.Info("bootstrapped from the snapshot", "report", report, "rows", rows, "checkpoint", pos,
			"seconds", took.Round(time.Millisecond).Seconds(), "rows_per_second", math.Round(float64(rows)/took.Seconds()))
		return nil
	}
}

// beginLoad starts a report's bootstrap: a BulkLoad when the store is a
// BulkLoader, else batches of Apply.
func (m *materializer) beginLoad(ctx context.Context, t *Table) (BulkLoad, error) {
	if bl, ok := m.cfg.Store.(BulkLoader); ok {
		return bl.BeginLoad(ctx, t)
	}
	if err := m.cfg.Store.Reset(ctx, t.Report); err != nil {
		return nil, err
	}
	if err := m.cfg.Store.Apply(ctx, &Batch{Changes: []Change{{Kind: ChangeTable, Table: t}}}); err != nil {
		return nil, err
	}
	return &applyLoad{s: m.cfg.Store, table: t}, nil
}

// applyLoad is the bootstrap of a Store that is not a BulkLoader: each
// batch of rows is a transaction of its own, and the position comes last,
// so a load that never commits leaves rows without a position, which the
// next bootstrap resets first.
type applyLoad struct {
	s     Store
	table *Table // the layout written last
}

func (l *applyLoad) Write(ctx context.Context, b *LoadBatch) error {
	changes := b.Changes()
	if b.Table != l.table {
		changes = append([]Change{{Kind: ChangeTable, Table: b.Table}}, changes...)
		l.table = b.Table
	}
	return l.s.Apply(ctx, &Batch{Changes: changes})
}

func (l *applyLoad) Commit(ctx context.Context, positions map[string]uint64) error {
	return l.s.Apply(ctx, &Batch{Positions: positions})
}

func (*applyLoad) Abort(context.Context) error { return nil }

// loadBatch bounds the rows of one BulkLoad.Write.
const loadBatch = 5000

// loadBucket writes every row of a report's snapshot bucket to ld, and
// returns the table's layout after the last (rows may bring columns) and
// how many rows it wrote. The bucket is read and decoded on one goroutine
// while the rows are written on another, so that reading NATS and writing
// the database overlap; the batches go round between them, so that a
// million rows allocate nothing but what NATS delivers.
func (m *materializer) loadBucket(ctx context.Context, table *Table, ld BulkLoad) (*Table, int, error) {
	report := table.Report
	bucket, err := openBucket(ctx, m.cfg.JetStream, m.cfg.Prefix, report)
	if err != nil {
		return nil, 0, fmt.Errorf("bootstrap %s: %w", report, err)
	}
	m.log.Info("bootstrapping from the snapshot", "report", report, "keys", bucket.keys)
	m.progress(BootstrapProgress{Report: report, Total: bucket.keys})
	g, gctx := errgroup.WithContext(ctx)
	full, free := make(chan *LoadBatch, 2), make(chan *LoadBatch, 3)
	for range cap(free) {
		free <- &LoadBatch{}
	}
	final := table
	g.Go(func() error {
		defer close(full)
		dec := newRowDecoder(table)
		var b *LoadBatch
		take := func() error {
			select {
			case b = <-free:
				b.Table, b.Tokens, b.Values = dec.table, b.Tokens[:0], b.Values[:0]
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		send := func() error {
			select {
			case full <- b:
				return take()
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		if err := take(); err != nil {
			return err
		}
		err := bucket.read(gctx, m.cfg.JetStream, func(token string, data []byte) error {
			n := len(dec.table.Columns)
			at := len(b.Values)
			b.Values = slices.Grow(b.Values, n)[:at+n]
			clear(b.Values[at:]) // null, and nothing of a batch before
			err := dec.decode(data, b.Values[at:])
			if errors.Is(err, errNewColumn) {
				// The rows so far go as they are, this one with the table
				// grown.
				b.Values = b.Values[:at]
				row, err := decodeRow(data)
				if err != nil {
					return err
				}
				if b.Len() > 0 {
					if err := send(); err != nil {
						return err
					}
				}
				t, _ := withColumns(dec.table, row)
				dec, b.Table = newRowDecoder(t), t
				for _, c := range t.Columns {
					b.Values = append(b.Values, row[c.Key])
				}
			} else if err != nil {
				return err
			}
			if b.Tokens = append(b.Tokens, token); b.Len() == loadBatch {
				return send()
			}
			return nil
		})
		if err == nil && b.Len() > 0 {
			err = send()
		}
		final = dec.table
		return err
	})
	loaded := 0
	g.Go(func() error {
		for b := range full {
			if err := ld.Write(gctx, b); err != nil {
				return err
			}
			loaded += b.Len()
			free <- b
			m.log.Debug("bootstrap: rows written", "report", report, "rows", loaded, "keys", bucket.keys)
			m.progress(BootstrapProgress{Report: report, Loaded: loaded, Total: max(bucket.keys, loaded)})
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, loaded, fmt.Errorf("bootstrap %s: %w", report, err)
	}
	return final, loaded, nil
}

func (m *materializer) progress(p BootstrapProgress) {
	if m.cfg.OnBootstrap != nil {
		m.cfg.OnBootstrap(p)
	}
}

// snapshotBucket is a report's snapshot bucket as a bootstrap reads it.
type snapshotBucket struct {
	stream, keyPrefix string
	// keys counts the keys, deleted ones included; 0 when there is no
	// bucket.
	keys int
	// latestOnly says the stream keeps only the latest entry of each key
	// (a bucket of history 1, as the producer makes them).
	latestOnly bool
}

func openBucket(ctx context.Context, js jetstream.JetStream, prefix, report string) (*snapshotBucket, error) {
	name := event.BucketName(prefix, report)
	b := &snapshotBucket{stream: event.KVStream(name), keyPrefix: event.KVSubjectPrefix(name)}
	s, err := js.Stream(ctx, b.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	b.keys, b.latestOnly = int(info.State.NumSubjects), info.Config.MaxMsgsPerSubject == 1
	return b, nil
}

// readAhead is how many messages of a bucket the server sends ahead of
// the one being decoded.
const readAhead = 4096

// read is ReadBucket, faster, as a bootstrap needs it: fn gets each row
// undecoded. The bucket's stream holds nothing but its keys, so the
// ordered consumer needs no subject filter, and with none the server starts
// delivering at once instead of first counting the pending messages key by
// key (seconds for a million keys); a stream that keeps only the latest
// entry of each key is read whole, which costs the server less than
// picking the last of each; and the server sends ahead while rows are
// decoded.
//
// It reads the messages the consumer counted when it started. One written
// since may take the place of one not read yet and stop the reading before
// a key the bucket had: that key was written after the checkpoint read
// before the bucket, so the stream's events after it bring the key's row
// as any write the reading misses.
func (b *snapshotBucket) read(ctx context.Context, js jetstream.JetStream, fn func(token string, data []byte) error) error {
	if b.keys == 0 {
		return nil
	}
	policy := jetstream.DeliverLastPerSubjectPolicy
	if b.latestOnly {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, b.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	if err != nil {
		return fmt.Errorf("read stream %s: %w", b.stream, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(readAhead))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", b.stream, err)
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	info := cons.CachedInfo()
	if info == nil {
		return fmt.Errorf("read stream %s: no consumer", b.stream)
	}
	for left := info.NumPending; left > 0; left-- {
		msg, err := msgs.Next(jetstream.NextMaxWait(time.Second))
		for errors.Is(err, nats.ErrTimeout) {
			// Nothing came: the messages counted may have expired since.
			now, ierr := cons.Info(ctx)
			if ierr != nil {
				return fmt.Errorf("read stream %s: %w", b.stream, ierr)
			}
			if now.NumPending == 0 {
				return nil
			}
			msg, err = msgs.Next(jetstream.NextMaxWait(time.Second))
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read stream %s: %w", b.stream, err)
		}
		if event.KVRemoved(msg.Headers().Get(event.KVOperationHeader)) {
			continue
		}
		if err := fn(strings.TrimPrefix(msg.Subject(), b.keyPrefix), msg.Data()); err != nil {
			return fmt.Errorf("snapshot row %s: %w", msg.Subject(), err)
		}
	}
	return nil
}

// errNewColumn is a snapshot row with a column its table lacks.
var errNewColumn = errors.New("a column the table lacks")

// rowDecoder decodes snapshot rows, JSON objects of scalars, into the
// values of a table's columns, as json.Unmarshal decodes an event.Row:
// strings, numbers with their digits and nulls, and nothing else. The
// values share the row's bytes, which nothing changes.
type rowDecoder struct {
	table *Table
	index map[string]int // a column's position in the table
	// order is the column of each member of the row before: rows list
	// their columns in the same order, which a comparison confirms faster
	// than a lookup.
	order []int
}

func newRowDecoder(t *Table) *rowDecoder {
	d := &rowDecoder{table: t, index: make(map[string]int, len(t.Columns))}
	for i, c := range t.Columns {
		d.index[c.Key] = i
	}
	return d
}

// decode decodes a row into vals, one per column of the table, all null to
// start with. It returns errNewColumn for a row with a column the table
// lacks.
func (d *rowDecoder) decode(b []byte, vals []event.Value) error {
	s := jsonscan.NewOwned(b)
	if err := s.Expect('{'); err != nil {
		return err
	}
	for j := 0; s.Peek() != '}'; j++ {
		if j > 0 {
			if err := s.Expect(','); err != nil {
				return err
			}
		}
		key, err := s.Str()
		if err != nil {
			return err
		}
		col := -1
		if j < len(d.order) && d.table.Columns[d.order[j]].Key == key {
			col = d.order[j]
		} else if i, ok := d.index[key]; ok {
			col = i
			if j < len(d.order) {
				d.order[j] = i
			} else {
				d.order = append(d.order, i)
			}
		} else {
			return errNewColumn
		}
		if err := s.Expect(':'); err != nil {
			return err
		}
		if vals[col], err = scalar(s, key); err != nil {
			return err
		}
	}
	return rowEnd(s)
}

// decodeRow decodes a snapshot row into an event.Row, as rowDecoder does.
func decodeRow(b []byte) (event.Row, error) {
	s := jsonscan.NewOwned(b)
	if err := s.Expect('{'); err != nil {
		return nil, err
	}
	row := event.Row{}
	for first := true; s.Peek() != '}'; first = false {
		if !first {
			if err := s.Expect(','); err != nil {
				return nil, err
			}
		}
		col, err := s.Str()
		if err != nil {
			return nil, err
		}
		if err := s.Expect(':'); err != nil {
			return nil, err
		}
		if row[col], err = scalar(s, col); err != nil {
			return nil, err
		}
	}
	return row, rowEnd(s)
}

// scalar reads the value of a row's column.
func scalar(s *jsonscan.Scanner, col string) (event.Value, error) {
	v, err := s.Scalar()
	if err != nil {
		return event.Value{}, fmt.Errorf("column %q: %w", jsonscan.Truncate(col, 64), err)
	}
	switch v.Kind {
	case jsonscan.KindNull:
		return event.Value{}, nil
	case jsonscan.KindNumber:
		return event.NumberValue(v.Text), nil
	case jsonscan.KindString:
		return event.TextValue(v.Text), nil
	}
	return event.Value{}, fmt.Errorf("column %q: unsupported %s value", jsonscan.Truncate(col, 64), v.Kind)
}

// rowEnd reads the row's closing brace, after which there must be nothing.
func rowEnd(s *jsonscan.Scanner) error {
	s.I++
	if s.Peek() != 0 {
		return s.Errorf("data after the row")
	}
	return nil
}
