package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/cometstream/cometstream/consumer"
)

var _ consumer.BulkLoader = (*Store)(nil)

// loadCache is the page cache of a bulk load, in KiB, instead of the 2 MB
// a connection starts with: the key index of a large table takes rows in
// any order without going back to the file for its pages. The journal
// (WAL) and synchronous settings stay as they are, so a load killed at any
// moment rolls back like any other transaction.
const loadCache = 64 << 10

// BeginLoad implements consumer.BulkLoader. The load is one transaction of
// prepared multi-row INSERTs into the emptied table, on the store's one
// connection. Readers of the database (on connections of their own) go on
// seeing the table as it was until the load commits.
func (s *Store) BeginLoad(ctx context.Context, t *consumer.Table) (consumer.BulkLoad, error) {
	s.mu.Lock()
	l := &bulkLoad{s: s, report: t.Report, table: t, savedCols: maps.Clone(s.columns), savedKeys: maps.Clone(s.keys), savedNames: maps.Clone(s.names), stmts: map[string]*sql.Stmt{}}
	if err := l.begin(ctx, t); err != nil {
		return nil, errors.Join(err, l.Abort(context.WithoutCancel(ctx)))
	}
	return l, nil
}

// bulkLoad is a load in progress. It holds s.mu from BeginLoad to its end,
// and the database's one connection.
type bulkLoad struct {
	s                    *Store
	report               string
	savedCols, savedKeys map[string][]string // the layouts to restore on abort
	savedNames           map[string]map[string]string
	conn                 *sql.Conn
	cache                int64 // the connection's cache_size, restored at the end
	tx                   *sql.Tx
	stmts                map[string]*sql.Stmt // by column set and row count
	args                 []any
	table                *consumer.Table // the layout written last
	ended                bool
}

func (l *bulkLoad) begin(ctx context.Context, t *consumer.Table) error {
	var err error
	if l.conn, err = l.s.db.Conn(ctx); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if err := l.conn.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&l.cache); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if _, err := l.conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, -loadCache)); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if l.tx, err = l.conn.BeginTx(ctx, nil); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	if _, ok := l.s.columns[t.Report]; ok {
		// Emptied, or built again when this layout names a column other
		// than the table does (keys alike but for case, in another order):
		// nothing is in it to keep, and no rename can clash.
		q := `DELETE FROM ` + Ident(t.Report)
		if l.s.renames(t) {
			q = `DROP TABLE ` + Ident(t.Report)
			delete(l.s.columns, t.Report)
		}
		if _, err := l.tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("load %s: empty the table: %w", t.Report, err)
		}
	}
	if err := l.s.ensureTable(ctx, l.tx, t); err != nil {
		return err
	}
	if _, err := l.tx.ExecContext(ctx, `DELETE FROM _cometstream_position WHERE report = ?`, t.Report); err != nil {
		return fmt.Errorf("load %s: %w", t.Report, err)
	}
	return nil
}

// rowsPerInsert is how many rows one INSERT takes, at most: enough to make
// the statement's own cost vanish, within SQLite's limit of 32766
// parameters.
const rowsPerInsert = 256

// Write implements consumer.BulkLoad: rowsPerInsert rows to a statement. A
// token written before is an upsert, and its last row wins.
func (l *bulkLoad) Write(ctx context.Context, b *consumer.LoadBatch) error {
	if l.ended {
		return errors.New("write to a load that has ended")
	}
	if b.Table.Report != l.report {
		return fmt.Errorf("load %s: rows of %s", l.report, b.Table.Report)
	}
	if b.Table != l.table {
		if err := l.s.ensureTable(ctx, l.tx, b.Table); err != nil { // perhaps a column more
			return err
		}
		l.table = b.Table
	}
	cols := make([]string, len(b.Table.Columns))
	for i, c := range b.Table.Columns {
		cols[i] = c.Key
	}
	token := b.Table.ContentKeyed()
	width := len(cols)
	if token {
		width++
	}
	per := max(1, min(rowsPerInsert, 32766/width))
	for at := 0; at < b.Len(); at += per {
		n := min(per, b.Len()-at)
		st, err := l.statement(ctx, cols, token, n)
		if err != nil {
			return err
		}
		l.args = l.args[:0]
		for i := at; i < at+n; i++ {
			for _, v := range b.Row(i) {
				l.args = append(l.args, Arg(v))
			}
			if token {
				l.args = append(l.args, b.Tokens[i])
			}
		}
		if _, err := st.ExecContext(ctx, l.args...); err != nil {
			return fmt.Errorf("load %s: %w", l.report, err)
		}
	}
	return nil
}

// statement prepares, once per load, the INSERT of n rows with cols (and
// the token for a content-keyed table).
func (l *bulkLoad) statement(ctx context.Context, cols []string, token bool, n int) (*sql.Stmt, error) {
	key := fmt.Sprint(n, "\x00", strings.Join(cols, "\x00"))
	if st, ok := l.stmts[key]; ok {
		return st, nil
	}
	var names, marks, sets, conflict []string
	col := func(key string) string { return l.s.col(l.report, key) }
	for _, c := range cols {
		names = append(names, col(c))
		marks = append(marks, "?")
		sets = append(sets, col(c)+" = excluded."+col(c))
	}
	if token {
		names = append(names, col(KeyColumn))
		marks = append(marks, "?")
		conflict = []string{col(KeyColumn)}
	} else {
		for _, k := range l.s.keys[l.report] {
			conflict = append(conflict, col(k))
		}
	}
	action := "DO UPDATE SET " + strings.Join(sets, ", ")
	if len(sets) == 0 {
		action = "DO NOTHING"
	}
	tuple := "(" + strings.Join(marks, ", ") + ")"
	q := `INSERT INTO ` + Ident(l.report) + ` (` + strings.Join(names, ", ") + `) VALUES ` + strings.Repeat(tuple+", ", n-1) + tuple +
		` ON CONFLICT (` + strings.Join(conflict, ", ") + `) ` + action
	st, err := l.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("load %s: prepare: %w", l.report, err)
	}
	l.stmts[key] = st
	return st, nil
}

// Commit implements consumer.BulkLoad.
func (l *bulkLoad) Commit(ctx context.Context, positions map[string]uint64) error {
	if l.ended {
		return errors.New("commit a load that has ended")
	}
	err := l.s.writePositions(ctx, l.tx, positions)
	if err == nil {
		err = l.tx.Commit()
	}
	if err != nil {
		err = fmt.Errorf("load %s: commit: %w", l.report, err)
	}
	return errors.Join(err, l.end(ctx, err == nil))
}

// Abort implements consumer.BulkLoad.
func (l *bulkLoad) Abort(ctx context.Context) error {
	if l.ended {
		return nil
	}
	return l.end(ctx, false)
}

// end rolls back what did not commit, gives the connection back with its
// cache as it was, and lets the store go.
func (l *bulkLoad) end(ctx context.Context, committed bool) error {
	defer l.s.mu.Unlock()
	l.ended = true
	var errs []error
	if l.tx != nil && !committed {
		if err := l.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			errs = append(errs, fmt.Errorf("load %s: roll back: %w", l.report, err))
		}
	}
	if !committed {
		l.s.columns, l.s.keys, l.s.names = l.savedCols, l.savedKeys, l.savedNames
	}
	if l.conn != nil {
		if l.cache != 0 {
			if _, err := l.conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, l.cache)); err != nil {
				errs = append(errs, fmt.Errorf("load %s: %w", l.report, err))
			}
		}
		errs = append(errs, l.conn.Close())
	}
	return errors.Join(errs...)
}
