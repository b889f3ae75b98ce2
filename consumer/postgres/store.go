package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/colname"
	"github.com/cometstream/cometstream/internal/layout"
)

// KeyColumn is the primary key of a report keyed by content: the row key
// token.
const KeyColumn = consumer.TokenColumn

// SchemaRE is what a schema name must match.
var SchemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Store is a PostgreSQL schema kept by a sink.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	mu     sync.Mutex
	tables map[string]*consumer.Table   // layouts as created
	oids   map[string]map[string]uint32 // column types read, by table; nil: none
	// hadRows says the table had rows of its last upsert: the next one
	// looks its keys up before copying rows in.
	hadRows map[string]bool
}

var _ consumer.Store = (*Store)(nil)

// Open connects and creates the schema and the bookkeeping tables.
func Open(ctx context.Context, dsn, schema string) (*Store, error) {
	s, err := connect(ctx, dsn, schema)
	if err != nil {
		return nil, err
	}
	for _, q := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + Ident(schema),
		`CREATE TABLE IF NOT EXISTS ` + s.name("_cometstream_position") + ` (report text PRIMARY KEY, seq bigint NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + s.name("_cometstream_table") + ` (report text PRIMARY KEY, key jsonb NOT NULL, columns jsonb NOT NULL)`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			s.Close()
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	if s.tables, err = s.Tables(ctx); err != nil {
		s.Close()
		return nil, err
	}
	for _, t := range s.tables {
		if err := s.comment(ctx, s.pool, t); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// connect checks the schema's name and connects to the database, creating
// nothing: the start of Open and OpenReadOnly.
func connect(ctx context.Context, dsn, schema string) (*Store, error) {
	if !SchemaRE.MatchString(schema) {
		return nil, fmt.Errorf("schema %q must match %s", schema, SchemaRE)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool, schema: schema, tables: map[string]*consumer.Table{}}, nil
}

// Pool returns the connection pool, for reading.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ident quotes an SQL identifier.
func Ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// maxIdentBytes is the longest name PostgreSQL keeps (NAMEDATALEN - 1):
// it cuts longer ones, silently, so that two column keys alike in their
// first 63 bytes would name one column.
const maxIdentBytes = 63

// Column is the name of a column key's column: the key itself, unless
// PostgreSQL cannot keep it, being longer than 63 bytes or holding a NUL
// byte. Then it is the key without NUL bytes, cut to 54 bytes (on a
// character boundary), "_" and the first 8 hex digits of the SHA-256 of
// the key: a name of the key alone, the same in every database.
func Column(key string) string {
	if len(key) <= maxIdentBytes && !strings.ContainsRune(key, 0) {
		return key
	}
	return colname.Hashed(key, maxIdentBytes)
}

// col quotes a column key's column name.
func col(key string) string { return Ident(Column(key)) }

func (s *Store) name(table string) string { return Ident(s.schema) + "." + Ident(table) }

// SQLType is a column's PostgreSQL type.
func SQLType(t event.ColumnType) string {
	switch t {
	case event.TypeNumber, event.TypeAmount:
		return "numeric"
	case event.TypeDate:
		return "date"
	case event.TypeDateTime:
		return "timestamptz"
	}
	return "text"
}

// Positions implements consumer.Store.
func (s *Store) Positions(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT report, seq FROM `+s.name("_cometstream_position"))
	if err != nil {
		return nil, fmt.Errorf("positions: %w", err)
	}
	out := map[string]uint64{}
	var r string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&r, &seq}, func() error { out[r] = uint64(seq); return nil })
	return out, err
}

// Tables implements consumer.Store.
func (s *Store) Tables(ctx context.Context) (map[string]*consumer.Table, error) {
	rows, err := s.pool.Query(ctx, `SELECT report, key, columns FROM `+s.name("_cometstream_table"))
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	out := map[string]*consumer.Table{}
	var r string
	var key, cols []byte
	_, err = pgx.ForEachRow(rows, []any{&r, &key, &cols}, func() error {
		t, err := layout.Decode(r, key, cols)
		out[r] = t
		return err
	})
	return out, err
}

// Reset implements consumer.Store.
func (s *Store) Reset(ctx context.Context, report string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, ok := s.tables[report]; ok {
			if _, err := tx.Exec(ctx, `DELETE FROM `+s.name(report)); err != nil {
				return fmt.Errorf("reset %s: %w", report, err)
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM `+s.name("_cometstream_position")+` WHERE report = $1`, report)
		return err
	})
}

// Apply implements consumer.Store: the changes and the positions in one
// transaction.
func (s *Store) Apply(ctx context.Context, b *consumer.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved := maps.Clone(s.tables)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		changes := b.Changes
		for len(changes) > 0 {
			if changes[0].Kind == consumer.ChangeTable {
				if err := s.ensureTable(ctx, tx, changes[0].Table); err != nil {
					return err
				}
				changes = changes[1:]
				continue
			}
			n := slices.IndexFunc(changes, func(ch consumer.Change) bool { return ch.Kind == consumer.ChangeTable })
			if n < 0 {
				n = len(changes)
			}
			if err := s.applyRows(ctx, tx, changes[:n]); err != nil {
				return err
			}
			changes = changes[n:]
		}
		return s.writePositions(ctx, tx, b.Positions)
	})
	if err != nil {
		s.tables, s.oids = saved, nil // what the database holds is read again
	}
	return err
}

// applyRows applies upserts and deletes. Only the last change of each row
// decides what the row becomes, so the changes need not go one by one: the
// rows of one table with one column set go in one upsert, the rows deleted
// from one table in one DELETE.
func (s *Store) applyRows(ctx context.Context, tx pgx.Tx, changes []consumer.Change) error {
	type row struct{ report, key string }
	keys := make([]row, len(changes))
	last := make(map[row]int, len(changes))
	for i, ch := range changes {
		keys[i] = row{ch.Table.Report, rowKey(ch)}
		last[keys[i]] = i
	}
	// A group is a table's deletes, or its upserts of one column set: a
	// row with every column of its table (as the materializer makes them)
	// needs no sorting of its columns to be told.
	type group struct {
		table         *consumer.Table
		delete, whole bool
		cols          string
	}
	var groups [][]consumer.Change // in the order of their first row
	at := map[group]int{}
	for i, ch := range changes {
		if last[keys[i]] != i {
			continue
		}
		g := group{table: ch.Table, delete: ch.Kind == consumer.ChangeDelete}
		if !g.delete {
			if g.whole = len(ch.Row) == len(ch.Table.Columns) && hasColumns(ch.Row, ch.Table); !g.whole {
				g.cols = strings.Join(slices.Sorted(maps.Keys(ch.Row)), "\x00")
			}
		}
		j, ok := at[g]
		if !ok {
			j = len(groups)
			at[g] = j
			groups = append(groups, nil)
		}
		groups[j] = append(groups[j], ch)
	}
	for _, g := range groups {
		var err error
		if g[0].Kind == consumer.ChangeDelete {
			err = s.delete(ctx, tx, g)
		} else {
			err = s.upsertUnique(ctx, tx, g)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rowKey identifies a change's row in its table: by the token for a
// content-keyed table, else by the key values.
func rowKey(ch consumer.Change) string {
	if ch.Table.ContentKeyed() {
		return ch.Token
	}
	if len(ch.Table.Key) == 1 {
		return ch.Row[ch.Table.Key[0]].Raw
	}
	var b strings.Builder
	for _, k := range ch.Table.Key {
		b.WriteString(ch.Row[k].Raw)
		b.WriteByte(0)
	}
	return b.String()
}

// writePositions records the reports' positions.
func (s *Store) writePositions(ctx context.Context, tx pgx.Tx, positions map[string]uint64) error {
	if len(positions) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for r, seq := range positions {
		batch.Queue(`INSERT INTO `+s.name("_cometstream_position")+` (report, seq) VALUES ($1, $2) ON CONFLICT (report) DO UPDATE SET seq = excluded.seq`, r, int64(seq))
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("positions: %w", err)
	}
	return nil
}

// hasColumns reports whether every column of the table is in the row.
func hasColumns(r event.Row, t *consumer.Table) bool {
	for _, c := range t.Columns {
		if _, ok := r[c.Key]; !ok {
			return false
		}
	}
	return true
}

func sameColumns(a, b event.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// ensureTable creates a report's table or adds the columns it lacks.
func (s *Store) ensureTable(ctx context.Context, tx pgx.Tx, t *consumer.Table) error {
	r := t.Report
	delete(s.oids, r)
	if old, ok := s.tables[r]; ok && !slices.Equal(old.Key, t.Key) {
		// Re-keyed by the producer: rebuilt by the events that follow.
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+s.name(r)); err != nil {
			return fmt.Errorf("drop %s: %w", r, err)
		}
		delete(s.tables, r)
	}
	if _, err := tx.Exec(ctx, t.CreateTable(s.name(r), col, SQLType)); err != nil {
		return fmt.Errorf("create table %s: %w", r, err)
	}
	for _, c := range t.Columns {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+s.name(r)+` ADD COLUMN IF NOT EXISTS `+col(c.Key)+` `+SQLType(c.Type)); err != nil {
			return fmt.Errorf("add column %s.%s: %w", r, c.Key, err)
		}
	}
	if err := s.comment(ctx, tx, t); err != nil {
		return err
	}
	key, cols := layout.Encode(t)
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.name("_cometstream_table")+` (report, key, columns) VALUES ($1, $2, $3) ON CONFLICT (report) DO UPDATE SET key = excluded.key, columns = excluded.columns`, r, key, cols); err != nil {
		return fmt.Errorf("layout of %s: %w", r, err)
	}
	s.tables[r] = t
	return nil
}

// querier is a transaction or the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// comment sets the COMMENT ON COLUMN of each column of t's table to the
// column's COMET display name where the comment says otherwise: on a new
// table or column, on a name changed, and on a table made before the names
// were kept.
func (s *Store) comment(ctx context.Context, q querier, t *consumer.Table) error {
	rows, err := q.Query(ctx, `SELECT attname, col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, s.name(t.Report))
	if err != nil {
		return fmt.Errorf("comments of %s: %w", t.Report, err)
	}
	have := map[string]string{}
	var name string
	var text *string
	if _, err := pgx.ForEachRow(rows, []any{&name, &text}, func() error {
		have[name] = ""
		if text != nil {
			have[name] = *text
		}
		return nil
	}); err != nil {
		return fmt.Errorf("comments of %s: %w", t.Report, err)
	}
	var sql strings.Builder
	for _, c := range t.Columns {
		if was, ok := have[Column(c.Key)]; ok && was != commentName(c.Name) {
			fmt.Fprintf(&sql, "COMMENT ON COLUMN %s.%s IS %s;", s.name(t.Report), col(c.Key), commentText(c.Name))
		}
	}
	if sql.Len() == 0 {
		return nil
	}
	if _, err := q.Exec(ctx, sql.String()); err != nil {
		return fmt.Errorf("comment on the columns of %s: %w", t.Report, err)
	}
	return nil
}

// commentName is a display name as a comment holds it: PostgreSQL strings
// cannot hold NUL.
func commentName(name string) string { return strings.ReplaceAll(name, "\x00", "") }

// commentText is a column's display name as an SQL literal, whatever
// standard_conforming_strings says; NULL (no comment) for none.
func commentText(name string) string {
	if name = commentName(name); name == "" {
		return "NULL"
	}
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(name) + "'"
}

// upsert writes a run of rows of one table with one column set. Rows new
// to the table go straight in with a binary COPY, which stores rows in
// bulk; the others are COPYed into a temporary table and merged with one
// INSERT … ON CONFLICT. For a table with a one-column key (the others merge
// every row), a run after one whose rows were all new is COPYed at once,
// and only when the table turns out to hold one of its keys is the COPY
// undone and which rows the table has looked up, with one query. Within
// the run the last row of a key wins, as it would applied one by one.
func (s *Store) upsert(ctx context.Context, tx pgx.Tx, run []consumer.Change) error {
	// The last change of each key, in order.
	keys := make([]string, len(run))
	last := make(map[string]int, len(run))
	for i, ch := range run {
		keys[i] = rowKey(ch)
		last[keys[i]] = i
	}
	rows := make([]consumer.Change, 0, len(last))
	for i, ch := range run {
		if last[keys[i]] == i {
			rows = append(rows, ch)
		}
	}
	return s.upsertUnique(ctx, tx, rows)
}

// upsertUnique is upsert of rows with one change per key.
func (s *Store) upsertUnique(ctx context.Context, tx pgx.Tx, rows []consumer.Change) error {
	t := rows[0].Table
	layout := s.tables[t.Report]
	if layout == nil {
		return fmt.Errorf("upsert into %s: no table", t.Report)
	}
	cols := slices.Sorted(maps.Keys(rows[0].Row))
	enc := &rowEncoder{report: t.Report, cols: cols, token: t.ContentKeyed(), types: pgtype.NewMap()}
	if enc.token {
		enc.cols = append(slices.Clip(cols), KeyColumn)
	}
	key := t.Key
	if t.ContentKeyed() {
		key = []string{KeyColumn}
	}
	for _, k := range key {
		if !slices.Contains(enc.cols, k) {
			return errors.New("upsert into " + t.Report + ": the row lacks key column " + k)
		}
	}
	var defs, names []string
	types := make([]string, len(enc.cols))
	for i, c := range enc.cols {
		types[i] = "text"
		if col, ok := layout.Column(c); ok && c != KeyColumn {
			types[i] = SQLType(col.Type)
		}
		enc.oids = append(enc.oids, sqlOID[types[i]])
		defs = append(defs, col(c)+" "+types[i])
		names = append(names, col(c))
	}
	if len(key) == 1 {
		direct, err := s.copyable(ctx, tx, t.Report, enc)
		if err != nil {
			return err
		}
		if direct {
			if !s.hadRows[t.Report] {
				// The rows are new to the table, as the last batch's were, and
				// go in with no lookup unless the table has one of them.
				copied, err := s.copyNew(ctx, tx, s.name(t.Report), names, enc, rows)
				if err != nil || copied {
					return err
				}
			}
			var fresh []consumer.Change
			if fresh, rows, err = s.partition(ctx, tx, t, key[0], types[slices.Index(enc.cols, key[0])], rows); err != nil {
				return err
			}
			if s.hadRows == nil {
				s.hadRows = map[string]bool{}
			}
			s.hadRows[t.Report] = len(rows) > 0
			if err := s.copyRows(ctx, tx, s.name(t.Report), names, enc, fresh); err != nil {
				return err
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	// One staging table per session and column layout, emptied at every
	// commit: no DDL per batch once it exists.
	sum := sha256.Sum256([]byte(strings.Join(defs, ",")))
	stage := "_cometstream_stage_" + hex.EncodeToString(sum[:8])
	// Emptied first: an earlier run of this transaction may have used it.
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS `+stage+` (`+strings.Join(defs, ", ")+`) ON COMMIT DELETE ROWS; TRUNCATE `+stage); err != nil {
		return fmt.Errorf("staging for %s: %w", t.Report, err)
	}
	if err := s.copyRows(ctx, tx, stage, names, enc, rows); err != nil {
		return err
	}
	var sets, conflict []string
	for _, c := range enc.cols {
		if !slices.Contains(key, c) {
			sets = append(sets, col(c)+" = excluded."+col(c))
		}
	}
	for _, k := range key {
		conflict = append(conflict, col(k))
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	q := `INSERT INTO ` + s.name(t.Report) + ` (` + strings.Join(names, ", ") + `) SELECT ` + strings.Join(names, ", ") + ` FROM ` + stage +
		` ON CONFLICT (` + strings.Join(conflict, ", ") + `) ` + action
	if _, err := tx.Exec(ctx, q); err != nil {
		return fmt.Errorf("merge into %s: %w", t.Report, err)
	}
	return nil
}

// copyRows COPYs rows into a table, in binary.
func (s *Store) copyRows(ctx context.Context, tx pgx.Tx, table string, names []string, enc *rowEncoder, rows []consumer.Change) error {
	if len(rows) == 0 {
		return nil
	}
	data := append(make([]byte, 0, 64<<10), copyHeader...)
	n := len(enc.cols)
	if enc.token {
		n--
	}
	vals := make([]event.Value, n)
	for _, ch := range rows {
		for j, c := range enc.cols[:n] {
			vals[j] = ch.Row[c]
		}
		var err error
		if data, err = enc.append(data, vals, ch.Token); err != nil {
			return err
		}
	}
	data = appendTrailer(data)
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), `COPY `+table+` (`+strings.Join(names, ", ")+`) FROM STDIN BINARY`); err != nil {
		return fmt.Errorf("copy into %s: %w", enc.report, err)
	}
	return nil
}

// copyNew COPYs rows into a table and reports whether it could: it could
// not when the table holds a row with one of their keys, and then it has
// written nothing.
func (s *Store) copyNew(ctx context.Context, tx pgx.Tx, table string, names []string, enc *rowEncoder, rows []consumer.Change) (bool, error) {
	if _, err := tx.Exec(ctx, `SAVEPOINT copy_new`); err != nil {
		return false, fmt.Errorf("copy into %s: %w", enc.report, err)
	}
	err := s.copyRows(ctx, tx, table, names, enc, rows)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT copy_new`); err != nil {
			return false, fmt.Errorf("copy into %s: %w", enc.report, err)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT copy_new`); err != nil {
		return false, fmt.Errorf("copy into %s: %w", enc.report, err)
	}
	return true, nil
}

// partition splits rows (one per key) into those whose key the table does
// not have yet and those it has, with one index lookup per row: the LATERAL
// … LIMIT 1 leaves the planner no other way, where a join might read the
// whole table for a few rows.
func (s *Store) partition(ctx context.Context, tx pgx.Tx, t *consumer.Table, key, typ string, rows []consumer.Change) (fresh, old []consumer.Change, err error) {
	keys := make([]*string, len(rows))
	for i, ch := range rows {
		if t.ContentKeyed() {
			keys[i] = &ch.Token
		} else if v := ch.Row[key]; !v.IsNull() {
			keys[i] = &v.Raw
		}
	}
	q := `SELECT d.i FROM unnest($1::text[]) WITH ORDINALITY AS d(k, i) CROSS JOIN LATERAL (SELECT FROM ` + s.name(t.Report) +
		` WHERE ` + col(key) + ` = d.k::` + typ + ` LIMIT 1) AS e`
	res, err := tx.Query(ctx, q, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("upsert into %s: %w", t.Report, err)
	}
	has := make([]bool, len(rows))
	var i int64
	if _, err := pgx.ForEachRow(res, []any{&i}, func() error { has[i-1] = true; return nil }); err != nil {
		return nil, nil, fmt.Errorf("upsert into %s: %w", t.Report, err)
	}
	for j, ch := range rows {
		if has[j] {
			old = append(old, ch)
		} else {
			fresh = append(fresh, ch)
		}
	}
	return fresh, old, nil
}

// copyable reports whether the table's columns have the types enc encodes
// (as the store made them): a column retyped by hand takes its values only
// through SQL's casts.
func (s *Store) copyable(ctx context.Context, tx pgx.Tx, report string, enc *rowEncoder) (bool, error) {
	have := s.oids[report]
	if have == nil {
		if s.oids == nil {
			s.oids = map[string]map[string]uint32{}
		}
		rows, err := tx.Query(ctx, `SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, s.name(report))
		if err != nil {
			return false, fmt.Errorf("column types of %s: %w", report, err)
		}
		have = map[string]uint32{}
		var col string
		var oid uint32
		if _, err := pgx.ForEachRow(rows, []any{&col, &oid}, func() error { have[col] = oid; return nil }); err != nil {
			return false, fmt.Errorf("column types of %s: %w", report, err)
		}
		s.oids[report] = have
	}
	for i, c := range enc.cols {
		if have[Column(c)] != enc.oids[i] {
			return false, nil
		}
	}
	return true, nil
}

// sqlOID is the type of each SQLType.
var sqlOID = map[string]uint32{"numeric": pgtype.NumericOID, "date": pgtype.DateOID, "timestamptz": pgtype.TimestamptzOID, "text": pgtype.TextOID}

// delete removes rows of one table, in one statement: the key values go as
// text arrays, which SQL casts to the key columns' types.
func (s *Store) delete(ctx context.Context, tx pgx.Tx, run []consumer.Change) error {
	t := run[0].Table
	layout := s.tables[t.Report]
	if layout == nil {
		return nil // nothing to delete from
	}
	key := t.Key
	if t.ContentKeyed() {
		key = []string{KeyColumn}
	}
	rows := make([]consumer.Change, 0, len(run))
	for _, ch := range run {
		matches := true
		for _, k := range t.Key {
			v, ok := ch.Row[k]
			if !ok && !t.ContentKeyed() {
				return errors.New("delete from " + t.Report + ": the event lacks key column " + k)
			}
			matches = matches && !v.IsNull() // a null key is no row's
		}
		if matches || t.ContentKeyed() {
			rows = append(rows, ch)
		}
	}
	args := make([]any, len(key))
	var arrays, match []string
	for i, k := range key {
		vals := make([]string, 0, len(rows))
		for _, ch := range rows {
			if t.ContentKeyed() {
				vals = append(vals, ch.Token)
			} else {
				vals = append(vals, ch.Row[k].Raw)
			}
		}
		typ := "text"
		if col, ok := layout.Column(k); ok && k != KeyColumn {
			typ = SQLType(col.Type)
		}
		args[i] = vals
		arrays = append(arrays, fmt.Sprintf("$%d::text[]", i+1))
		match = append(match, fmt.Sprintf("t.%s = d.k%d::%s", col(k), i, typ))
	}
	names := make([]string, len(key))
	for i := range key {
		names[i] = fmt.Sprintf("k%d", i)
	}
	q := `DELETE FROM ` + s.name(t.Report) + ` t USING unnest(` + strings.Join(arrays, ", ") + `) AS d(` + strings.Join(names, ", ") + `) WHERE ` + strings.Join(match, " AND ")
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("delete from %s: %w", t.Report, err)
	}
	return nil
}

// pgValue converts a contract value to what pgx encodes for the column type.
func pgValue(t event.ColumnType, v event.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	switch SQLType(t) {
	case "numeric":
		var n pgtype.Numeric
		if err := n.Scan(PlainDecimal(v.Raw)); err != nil {
			return nil, fmt.Errorf("numeric %q: %w", jsonTrunc(v.Raw), err)
		}
		return n, nil
	case "date":
		d, err := time.ParseInLocation(event.DateLayout, v.Raw, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("date %q: %w", jsonTrunc(v.Raw), err)
		}
		return pgtype.Date{Time: d, Valid: true}, nil
	case "timestamptz":
		ts, err := time.Parse(time.RFC3339Nano, v.Raw)
		if err != nil {
			return nil, fmt.Errorf("timestamp %q: %w", jsonTrunc(v.Raw), err)
		}
		return ts, nil
	}
	return v.Raw, nil
}

func jsonTrunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// PlainDecimal rewrites a JSON number in exponent form ("1.5e3") as plain
// digits ("1500"), exactly; other literals are returned as they are.
func PlainDecimal(lit string) string {
	i := strings.IndexAny(lit, "eE")
	if i < 0 {
		return lit
	}
	mant, expStr := lit[:i], lit[i+1:]
	exp := 0
	if _, err := fmt.Sscanf(expStr, "%d", &exp); err != nil || exp > 1000 || exp < -1000 {
		return lit
	}
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart) + exp
	switch {
	case point <= 0:
		digits = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		digits += strings.Repeat("0", point-len(digits))
	default:
		digits = digits[:point] + "." + digits[point:]
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" || digits[0] == '.' {
		digits = "0" + digits
	}
	if neg {
		digits = "-" + digits
	}
	return digits
}
