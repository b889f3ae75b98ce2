package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

var _ consumer.BulkLoader = (*Store)(nil)

// BeginLoad implements consumer.BulkLoader. The load is one transaction
// that fills the table as pg_restore would: it empties the table with
// TRUNCATE (readers of the table wait until the load ends, then see it
// whole), sets its primary key aside, streams every row into it with one
// binary COPY, and builds the primary key again and records the position at
// Commit. A table a foreign key refers to is emptied with DELETE instead
// and keeps its key.
func (s *Store) BeginLoad(ctx context.Context, t *consumer.Table) (consumer.BulkLoad, error) {
	s.mu.Lock()
	l := &bulkLoad{s: s, report: t.Report, table: t, saved: maps.Clone(s.tables), seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}, types: pgtype.NewMap()}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("load %s: %w", t.Report, err)
	}
	l.tx = tx
	if err := l.begin(ctx, t); err != nil {
		return nil, errors.Join(err, l.Abort(context.WithoutCancel(ctx)))
	}
	return l, nil
}

// bulkLoad is a load in progress. It holds s.mu from BeginLoad to its end.
type bulkLoad struct {
	s      *Store
	report string
	tx     pgx.Tx
	saved  map[string]*consumer.Table // the layouts to restore on abort
	oids   map[string]uint32          // the table's column types
	types  *pgtype.Map
	// seen holds a hash of every token written, so that a token the
	// snapshot delivers again is upserted instead of copied (a collision
	// only sends a row the slow way).
	seed maphash.Seed
	seen map[uint64]struct{}
	// key is the primary key set aside while the rows go in (its name and
	// definition), "" when it stayed; again holds the rows to upsert once
	// it is back.
	key, keyDef string
	again       []consumer.Change
	table       *consumer.Table // the layout written last
	copy        *copyStream     // the COPY in progress, if any
	ended       bool
}

// maxAgain bounds the rows kept to upsert after the primary key is back:
// past it the key is built at once, and the load goes on with it.
const maxAgain = 10_000

func (l *bulkLoad) begin(ctx context.Context, t *consumer.Table) error {
	s := l.s
	var referenced bool // by a foreign key, which TRUNCATE refuses
	err := l.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_constraint WHERE confrelid = to_regclass($1) AND contype = 'f')`, s.name(t.Report)).Scan(&referenced)
	if err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if _, ok := s.tables[t.Report]; ok {
		empty := `TRUNCATE `
		if referenced {
			empty = `DELETE FROM `
		}
		if _, err := l.tx.Exec(ctx, empty+s.name(t.Report)); err != nil {
			return fmt.Errorf("load %s: empty the table: %w", t.Report, err)
		}
	}
	if err := s.ensureTable(ctx, l.tx, t); err != nil {
		return err
	}
	if err := l.columnTypes(ctx); err != nil {
		return err
	}
	if _, err := l.tx.Exec(ctx, `DELETE FROM `+s.name("_cometstream_position")+` WHERE report = $1`, t.Report); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if referenced {
		return nil // the key the foreign key needs stays
	}
	// An index built once over all the rows costs less than one kept up to
	// date row by row.
	err = l.tx.QueryRow(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'`, s.name(t.Report)).Scan(&l.key, &l.keyDef)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err == nil {
		_, err = l.tx.Exec(ctx, `ALTER TABLE `+s.name(t.Report)+` DROP CONSTRAINT `+Ident(l.key))
	}
	if err != nil {
		return fmt.Errorf("load %s: set the primary key aside: %w", t.Report, err)
	}
	return nil
}

// Write implements consumer.BulkLoad: the rows go into the COPY in
// progress.
func (l *bulkLoad) Write(ctx context.Context, b *consumer.LoadBatch) error {
	if l.ended {
		return errors.New("write to a load that has ended")
	}
	if b.Table.Report != l.report {
		return fmt.Errorf("load %s: rows of %s", l.report, b.Table.Report)
	}
	if b.Table != l.table {
		// Perhaps a column more: the COPY ends for the table to grow.
		if err := l.endCopy(); err != nil {
			return err
		}
		if err := l.s.ensureTable(ctx, l.tx, b.Table); err != nil {
			return err
		}
		if err := l.columnTypes(ctx); err != nil {
			return err
		}
		l.table = b.Table
	}
	if b.Len() == 0 {
		return nil
	}
	if l.key == "" {
		// The key is in place (a foreign key needs it, or many rows came
		// again): the rows go in as Apply's upserts do.
		if err := l.endCopy(); err != nil {
			return err
		}
		return l.upsert(ctx, b.Changes())
	}
	cols := make([]string, 0, len(b.Table.Columns)+1)
	for _, c := range b.Table.Columns {
		cols = append(cols, c.Key)
	}
	if b.Table.ContentKeyed() {
		cols = append(cols, KeyColumn)
	}
	oids := make([]uint32, len(cols))
	for i, c := range cols {
		if oids[i] = l.oids[Column(c)]; !copyable[oids[i]] || c == KeyColumn && oids[i] != pgtype.TextOID {
			// A column whose type was changed by hand: SQL casts the value.
			if err := l.endCopy(); err != nil {
				return err
			}
			return l.upsert(ctx, b.Changes())
		}
	}
	if l.copy != nil && !slices.Equal(l.copy.enc.cols, cols) {
		if err := l.endCopy(); err != nil {
			return err
		}
	}
	if l.copy == nil {
		l.copy = l.startCopy(&rowEncoder{report: l.report, cols: cols, oids: oids, token: b.Table.ContentKeyed(), types: l.types})
	}
	if err := l.copy.write(ctx, b, l.fresh); err != nil {
		return fmt.Errorf("copy into %s: %w", l.report, err)
	}
	if len(l.again) > maxAgain {
		if err := l.endCopy(); err != nil {
			return err
		}
		return l.upsert(ctx, nil) // the rows kept, once the key is back
	}
	return nil
}

// fresh reports whether row i of b has a token not written before, and
// keeps the row to upsert later if not.
func (l *bulkLoad) fresh(b *consumer.LoadBatch, i int) bool {
	h := maphash.String(l.seed, b.Tokens[i])
	if _, dup := l.seen[h]; !dup {
		l.seen[h] = struct{}{}
		return true
	}
	row := make(event.Row, len(b.Table.Columns))
	for j, v := range b.Row(i) {
		row[b.Table.Columns[j].Key] = v
	}
	l.again = append(l.again, consumer.Change{Kind: consumer.ChangeUpsert, Table: b.Table, Token: b.Tokens[i], Row: row})
	return false
}

// upsert builds the primary key if it is set aside, and writes the rows
// kept to upsert, then run, the way Apply does.
func (l *bulkLoad) upsert(ctx context.Context, run []consumer.Change) error {
	if err := l.restoreKey(ctx); err != nil { // ON CONFLICT needs the key
		return err
	}
	if len(l.again) > 0 {
		run = append(l.again, run...) // written before run
		l.again = nil
	}
	for len(run) > 0 {
		n := 1
		for n < len(run) && sameColumns(run[n].Row, run[0].Row) {
			n++
		}
		if err := l.s.upsert(ctx, l.tx, run[:n]); err != nil {
			return err
		}
		run = run[n:]
	}
	return nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// restoreKey builds the primary key set aside, if it is. Keys that are
// equal as values but not as text ("1" and "1.0" in a numeric column) are
// distinct tokens, so both rows went in: the one written last is kept, as
// the upserts of Apply would have had it.
func (l *bulkLoad) restoreKey(ctx context.Context) error {
	if l.key == "" {
		return nil
	}
	add := `ALTER TABLE ` + l.s.name(l.report) + ` ADD CONSTRAINT ` + Ident(l.key) + ` ` + l.keyDef
	_, err := l.tx.Exec(ctx, `SAVEPOINT restore_key; `+add)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		key := l.table.Key
		if l.table.ContentKeyed() {
			key = []string{KeyColumn}
		}
		var same []string
		for _, k := range key {
			same = append(same, "a."+col(k)+" = b."+col(k))
		}
		_, err = l.tx.Exec(ctx, `ROLLBACK TO SAVEPOINT restore_key; DELETE FROM `+l.s.name(l.report)+` a USING `+l.s.name(l.report)+` b WHERE `+
			strings.Join(same, " AND ")+` AND a.ctid < b.ctid; `+add)
	}
	if err == nil {
		_, err = l.tx.Exec(ctx, `RELEASE SAVEPOINT restore_key`)
	}
	if err != nil {
		return fmt.Errorf("load %s: build the primary key: %w", l.report, err)
	}
	l.key = ""
	return nil
}

// columnTypes reads the type of each column of the table.
func (l *bulkLoad) columnTypes(ctx context.Context) error {
	rows, err := l.tx.Query(ctx, `SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, l.s.name(l.report))
	if err != nil {
		return fmt.Errorf("load %s: column types: %w", l.report, err)
	}
	l.oids = map[string]uint32{}
	var col string
	var oid uint32
	_, err = pgx.ForEachRow(rows, []any{&col, &oid}, func() error { l.oids[col] = oid; return nil })
	if err != nil {
		return fmt.Errorf("load %s: column types: %w", l.report, err)
	}
	return nil
}

// Commit implements consumer.BulkLoad.
func (l *bulkLoad) Commit(ctx context.Context, positions map[string]uint64) error {
	if l.ended {
		return errors.New("commit a load that has ended")
	}
	err := l.endCopy()
	if err == nil {
		err = l.upsert(ctx, nil)
	}
	if err == nil {
		err = l.s.writePositions(ctx, l.tx, positions)
	}
	if err == nil {
		err = l.tx.Commit(ctx)
	}
	if err != nil {
		// Whatever failed, the transaction is over.
		err = errors.Join(err, l.rollback(context.WithoutCancel(ctx)))
	}
	l.end(err == nil)
	return err
}

// Abort implements consumer.BulkLoad.
func (l *bulkLoad) Abort(ctx context.Context) error {
	if l.ended {
		return nil
	}
	err := l.rollback(ctx)
	l.end(false)
	return err
}

func (l *bulkLoad) rollback(ctx context.Context) error {
	if l.copy != nil {
		l.copy.abort()
		l.copy = nil
	}
	if err := l.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("abort the load of %s: %w", l.report, err)
	}
	return nil
}

func (l *bulkLoad) end(committed bool) {
	if !committed {
		l.s.tables, l.s.oids = l.saved, nil
	}
	l.ended = true
	l.s.mu.Unlock()
}

// copyStream is a COPY that takes rows across Writes: one statement for
// the whole load, so that the server never waits between batches.
type copyStream struct {
	enc      *rowEncoder
	pw       *io.PipeWriter
	buf      []byte
	done     chan error
	finished bool
	err      error
}

// copyChunk is about how much encoded data goes into the pipe at a time.
const copyChunk = 64 << 10

// startCopy starts a COPY of the columns enc encodes, on the load's
// connection; nothing else may use it until endCopy.
func (l *bulkLoad) startCopy(enc *rowEncoder) *copyStream {
	names := make([]string, len(enc.cols))
	for i, c := range enc.cols {
		names[i] = col(c)
	}
	sql := `COPY ` + l.s.name(l.report) + ` (` + strings.Join(names, ", ") + `) FROM STDIN BINARY`
	pr, pw := io.Pipe()
	c := &copyStream{enc: enc, pw: pw, buf: append(make([]byte, 0, 2*copyChunk), copyHeader...), done: make(chan error, 1)}
	conn := l.tx.Conn().PgConn()
	go func() {
		// The load ends the COPY, not the context of one Write.
		_, err := conn.CopyFrom(context.Background(), pr, sql)
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		c.done <- err
	}()
	return c
}

// write encodes the rows of b that keep says to into the COPY. When ctx
// ends, so does the COPY.
func (c *copyStream) write(ctx context.Context, b *consumer.LoadBatch, keep func(*consumer.LoadBatch, int) bool) error {
	stop := context.AfterFunc(ctx, func() { c.pw.CloseWithError(ctx.Err()) })
	defer stop()
	for i := range b.Len() {
		if !keep(b, i) {
			continue
		}
		var err error
		if c.buf, err = c.enc.append(c.buf, b.Row(i), b.Tokens[i]); err != nil {
			c.abort()
			return err
		}
		if len(c.buf) >= copyChunk {
			if err := c.flush(); err != nil {
				return errors.Join(ctx.Err(), err)
			}
		}
	}
	return nil
}

// flush hands the encoded rows to the COPY.
func (c *copyStream) flush() error {
	_, err := c.pw.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		// The COPY ended: its own error says why.
		c.pw.CloseWithError(err)
		if cerr := c.wait(); cerr != nil {
			return cerr
		}
	}
	return err
}

// end sends what is left and the trailer, and waits for the COPY.
func (c *copyStream) end() error {
	c.buf = appendTrailer(c.buf)
	if err := c.flush(); err != nil {
		return err
	}
	c.pw.Close()
	return c.wait()
}

// abort fails the COPY and waits for it.
func (c *copyStream) abort() {
	c.pw.CloseWithError(errors.New("load aborted"))
	c.wait()
}

func (c *copyStream) wait() error {
	if !c.finished {
		c.err, c.finished = <-c.done, true
	}
	return c.err
}

func (l *bulkLoad) endCopy() error {
	if l.copy == nil {
		return nil
	}
	c := l.copy
	l.copy = nil
	if err := c.end(); err != nil {
		return fmt.Errorf("copy into %s: %w", l.report, err)
	}
	return nil
}
