package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	msqlite "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/colname"
	"github.com/cometstream/cometstream/internal/layout"
)

// KeyColumn is the primary key of a report keyed by content: the row key
// token.
const KeyColumn = consumer.TokenColumn

// Store is a SQLite database kept by a sink.
type Store struct {
	db *sql.DB
	mu sync.Mutex
	// columns are the columns each table has now.
	columns map[string][]string
	keys    map[string][]string
	// names are the column name of each column key, by table (tableNames).
	names map[string]map[string]string
}

var _ consumer.Store = (*Store)(nil)

// fileURI is path as an SQLite URI filename, which SQLite reads with its
// own rules: '?' and '#' would end the path and "%HH" would be decoded, so
// they are escaped, and an absolute path gets an empty authority ("file://"
// then the path) so that one starting "//" is not taken for a host.
func fileURI(path string) string {
	p := uriEscaper.Replace(path)
	if strings.HasPrefix(p, "/") {
		return "file://" + p
	}
	return "file:" + p
}

var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Open opens (creating if needed) the database file.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer; readers use their own connections to the WAL database.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, columns: map[string][]string{}, keys: map[string][]string{}, names: map[string]map[string]string{}}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS _cometstream_position (report TEXT PRIMARY KEY, seq INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS _cometstream_table (report TEXT PRIMARY KEY, key TEXT NOT NULL, columns TEXT NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	if err := writable(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	tables, err := s.Tables(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for r, t := range tables {
		s.keys[r], s.names[r] = t.Key, tableNames(t)
		if s.columns[r], err = s.tableColumns(ctx, db, r); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// errReadOnly is a database SQLite may read but not write.
var errReadOnly = errors.New("the database is read-only: the sink writes it (are the file, its -wal and -shm files and its directory writable by this user?)")

// writable checks that the database can be written: SQLite opens a file
// it may not write read-only, and only a write says so. The write is
// rolled back.
func writable(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO _cometstream_position (report, seq) VALUES ('', 0) ON CONFLICT (report) DO NOTHING`); err != nil {
		if readOnly(err) {
			return fmt.Errorf("%w: %w", errReadOnly, err)
		}
		return err
	}
	return nil
}

// readOnly reports whether err is SQLite's SQLITE_READONLY (or one of its
// extended codes).
func readOnly(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 8
}

// DB returns the database, for reading.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ident quotes an SQL identifier.
func Ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Column is the name of a column key's column: the key itself, unless it
// holds a NUL byte, which no SQLite name can. Then it is the key without
// NUL bytes, "_" and the first 8 hex digits of the SHA-256 of the key: a
// name of the key alone, the same in every database.
func Column(key string) string {
	if !strings.ContainsRune(key, 0) {
		return key
	}
	return colname.Hashed(key, 0)
}

// col quotes a column key's column name.
func col(key string) string { return Ident(Column(key)) }

// tableNames names the columns of a table: each key by Column, except that
// SQLite compares names without regard to ASCII case, so of keys that
// differ only so (amount, Amount) the one that comes first in the table's
// columns keeps its name, and each other is named by Column's rule for a
// NUL byte: the key, "_" and 8 hex digits of its SHA-256. A table's
// columns only grow, at the end, so a column once named keeps its name;
// a load whose layout names them otherwise builds the table afresh.
func tableNames(t *consumer.Table) map[string]string {
	var keys []string
	for _, c := range t.Columns {
		keys = append(keys, c.Key)
	}
	for _, k := range t.PrimaryKey() {
		if !slices.Contains(keys, k.Name) {
			keys = append(keys, k.Name)
		}
	}
	out := make(map[string]string, len(keys))
	taken := map[string]bool{}
	for _, k := range keys {
		n := Column(k)
		if taken[strings.ToLower(n)] {
			n = colname.Hashed(k, 0)
		}
		taken[strings.ToLower(n)] = true
		out[k] = n
	}
	return out
}

// renames reports whether t names a column of its report's table other
// than the table does.
func (s *Store) renames(t *consumer.Table) bool {
	names := tableNames(t)
	for key, was := range s.names[t.Report] {
		if now, ok := names[key]; ok && now != was {
			return true
		}
	}
	return false
}

// col quotes the name of a column of a report's table.
func (s *Store) col(report, key string) string {
	if n, ok := s.names[report][key]; ok {
		return Ident(n)
	}
	return col(key)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) tableColumns(ctx context.Context, q queryer, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Positions implements consumer.Store.
func (s *Store) Positions(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT report, seq FROM _cometstream_position`)
	if err != nil {
		return nil, fmt.Errorf("positions: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var r string
		var seq int64
		if err := rows.Scan(&r, &seq); err != nil {
			return nil, err
		}
		out[r] = uint64(seq)
	}
	return out, rows.Err()
}

// Tables implements consumer.Store.
func (s *Store) Tables(ctx context.Context) (map[string]*consumer.Table, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT report, key, columns FROM _cometstream_table`)
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	defer rows.Close()
	out := map[string]*consumer.Table{}
	for rows.Next() {
		var r, key, cols string
		if err := rows.Scan(&r, &key, &cols); err != nil {
			return nil, err
		}
		t, err := layout.Decode(r, []byte(key), []byte(cols))
		if err != nil {
			return nil, err
		}
		out[r] = t
	}
	return out, rows.Err()
}

// Reset implements consumer.Store: it empties the report's table and
// forgets its position.
func (s *Store) Reset(ctx context.Context, report string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, ok := s.columns[report]; ok {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+Ident(report)); err != nil {
			return fmt.Errorf("reset %s: %w", report, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM _cometstream_position WHERE report = ?`, report); err != nil {
		return fmt.Errorf("reset %s: %w", report, err)
	}
	return tx.Commit()
}

// Apply implements consumer.Store: one transaction for the changes and the
// positions.
func (s *Store) Apply(ctx context.Context, b *consumer.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.apply(ctx, b)
	if readOnly(err) {
		// The connection opened the file read-only and stays so: the next
		// attempt opens it again, and writes once its permissions allow.
		s.db.SetMaxIdleConns(0)
		s.db.SetMaxIdleConns(2)
		return fmt.Errorf("%w: %w", errReadOnly, err)
	}
	return err
}

func (s *Store) apply(ctx context.Context, b *consumer.Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	// Schema changes invalidate what the cache knows; restore it on failure.
	savedCols, savedKeys, savedNames := maps.Clone(s.columns), maps.Clone(s.keys), maps.Clone(s.names)
	ok := false
	defer func() {
		if !ok {
			s.columns, s.keys, s.names = savedCols, savedKeys, savedNames
		}
	}()
	// Statements are prepared once per transaction, on its connection.
	local := map[string]*sql.Stmt{}
	stmt := func(key, query string) (*sql.Stmt, error) {
		if st, ok := local[key]; ok {
			return st, nil
		}
		st, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", query, err)
		}
		local[key] = st
		return st, nil
	}
	shapes := map[string]*shape{}
	for _, ch := range b.Changes {
		switch ch.Kind {
		case consumer.ChangeTable:
			if err := s.ensureTable(ctx, tx, ch.Table); err != nil {
				return err
			}
			delete(shapes, ch.Table.Report)
		case consumer.ChangeUpsert:
			if err := s.upsert(ctx, stmt, shapes, ch); err != nil {
				return err
			}
		case consumer.ChangeDelete:
			if err := s.delete(ctx, stmt, ch); err != nil {
				return err
			}
		}
	}
	if err := s.writePositions(ctx, tx, b.Positions); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	ok = true
	return nil
}

// writePositions records the reports' positions.
func (s *Store) writePositions(ctx context.Context, tx *sql.Tx, positions map[string]uint64) error {
	for r, seq := range positions {
		if _, err := tx.ExecContext(ctx, `INSERT INTO _cometstream_position (report, seq) VALUES (?, ?) ON CONFLICT (report) DO UPDATE SET seq = excluded.seq`, r, int64(seq)); err != nil {
			return fmt.Errorf("position of %s: %w", r, err)
		}
	}
	return nil
}

func sqlType(t event.ColumnType) string {
	if t.Numeric() {
		return "NUMERIC"
	}
	return "TEXT"
}

// ensureTable creates a report's table or adds the columns it lacks.
func (s *Store) ensureTable(ctx context.Context, tx *sql.Tx, t *consumer.Table) error {
	r := t.Report
	if existing, ok := s.keys[r]; ok && !slices.Equal(existing, t.Key) {
		// Re-keyed by the producer: the primary key changes, so the table
		// is rebuilt (its rows are re-created by the events that follow).
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+Ident(r)); err != nil {
			return fmt.Errorf("drop %s: %w", r, err)
		}
		delete(s.columns, r)
	}
	have, exists := s.columns[r]
	names := tableNames(t)
	name := func(key string) string { return Ident(names[key]) }
	if !exists {
		if _, err := tx.ExecContext(ctx, t.CreateTable(Ident(r), name, sqlType)); err != nil {
			return fmt.Errorf("create table %s: %w", r, err)
		}
		var err error
		if have, err = s.tableColumns(ctx, tx, r); err != nil {
			return err
		}
	}
	if exists && s.renames(t) {
		// Outside a load, layouts only grow at the end (consumer.Table's
		// merge), so names stand; a load builds the table again first.
		return fmt.Errorf("layout of %s would rename its columns", r)
	}
	for _, c := range t.Columns {
		if !slices.Contains(have, names[c.Key]) {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+Ident(r)+` ADD COLUMN `+name(c.Key)+` `+sqlType(c.Type)); err != nil {
				return fmt.Errorf("add column %s.%s: %w", r, c.Key, err)
			}
			have = append(have, names[c.Key])
		}
	}
	s.names[r] = names
	key, cols := layout.Encode(t)
	if _, err := tx.ExecContext(ctx, `INSERT INTO _cometstream_table (report, key, columns) VALUES (?, ?, ?) ON CONFLICT (report) DO UPDATE SET key = excluded.key, columns = excluded.columns`, r, string(key), string(cols)); err != nil {
		return fmt.Errorf("layout of %s: %w", r, err)
	}
	s.columns[r], s.keys[r] = have, slices.Clone(t.Key)
	return nil
}

// Arg converts a value to what the driver binds: integers as int64 (exact),
// other numbers as their literal (the NUMERIC column converts it), text as
// text, null as nil.
func Arg(v event.Value) any {
	switch v.Kind {
	case event.Number:
		if n, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			return n
		}
		return v.Raw
	case event.Text:
		return v.Raw
	}
	return nil
}

// shape is a prepared upsert for rows with one set of columns.
type shape struct {
	cols []string
	stmt *sql.Stmt
}

func (sh *shape) fits(row event.Row) bool {
	if sh == nil || len(row) != len(sh.cols) {
		return false
	}
	for _, c := range sh.cols {
		if _, ok := row[c]; !ok {
			return false
		}
	}
	return true
}

func (s *Store) upsert(ctx context.Context, stmt func(key, query string) (*sql.Stmt, error), shapes map[string]*shape, ch consumer.Change) error {
	t := ch.Table
	if _, ok := s.columns[t.Report]; !ok {
		return fmt.Errorf("upsert into %s: no table", t.Report)
	}
	sh := shapes[t.Report]
	if !sh.fits(ch.Row) {
		// Rows of a report nearly always share their columns: build the
		// statement once per transaction and column set.
		cols := slices.Sorted(maps.Keys(ch.Row))
		var names, marks, sets, conflict []string
		for _, c := range cols {
			names = append(names, s.col(t.Report, c))
			marks = append(marks, "?")
			sets = append(sets, s.col(t.Report, c)+" = excluded."+s.col(t.Report, c))
		}
		if t.ContentKeyed() {
			names = append(names, s.col(t.Report, KeyColumn))
			marks = append(marks, "?")
			conflict = []string{s.col(t.Report, KeyColumn)}
		} else {
			for _, k := range t.Key {
				conflict = append(conflict, s.col(t.Report, k))
			}
		}
		action := "DO UPDATE SET " + strings.Join(sets, ", ")
		if len(sets) == 0 {
			action = "DO NOTHING"
		}
		q := `INSERT INTO ` + Ident(t.Report) + ` (` + strings.Join(names, ", ") + `) VALUES (` + strings.Join(marks, ", ") + `) ON CONFLICT (` + strings.Join(conflict, ", ") + `) ` + action
		st, err := stmt(t.Report+"\x00u\x00"+strings.Join(cols, "\x00")+"\x00k\x00"+strings.Join(t.Key, "\x00"), q)
		if err != nil {
			return err
		}
		sh = &shape{cols: cols, stmt: st}
		shapes[t.Report] = sh
	}
	args := make([]any, 0, len(sh.cols)+1)
	for _, c := range sh.cols {
		args = append(args, Arg(ch.Row[c]))
	}
	if t.ContentKeyed() {
		args = append(args, ch.Token)
	}
	if _, err := sh.stmt.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("upsert into %s: %w", t.Report, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, stmt func(key, query string) (*sql.Stmt, error), ch consumer.Change) error {
	t := ch.Table
	if _, ok := s.columns[t.Report]; !ok {
		return nil // nothing to delete from
	}
	var where []string
	var args []any
	if t.ContentKeyed() {
		where, args = []string{s.col(t.Report, KeyColumn) + " = ?"}, []any{ch.Token}
	} else {
		for _, k := range t.Key {
			v, ok := ch.Row[k]
			if !ok {
				return errors.New("delete from " + t.Report + ": the event lacks key column " + k)
			}
			where = append(where, s.col(t.Report, k)+" = ?")
			args = append(args, Arg(v))
		}
	}
	q := `DELETE FROM ` + Ident(t.Report) + ` WHERE ` + strings.Join(where, " AND ")
	st, err := stmt(t.Report+"\x00d\x00"+strings.Join(t.Key, "\x00"), q)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.Report, err)
	}
	return nil
}
