package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/layout"
)

// OpenReadOnly opens an existing sink database for reading only: it
// creates nothing and changes nothing (not even the journal mode), so it
// can run beside the sink, or on a copy. It fails when the file does not
// exist or holds no sink bookkeeping. Apply and Reset fail on the store it
// returns.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err // it names the file: "stat nope.db: no such file or directory"
	}
	db, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('_cometstream_position', '_cometstream_table')`).Scan(&n)
	if err == nil && n != 2 {
		err = errors.New("not a sink database: it lacks the _cometstream_position and _cometstream_table tables")
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, columns: map[string][]string{}, keys: map[string][]string{}}, nil
}

// ReadRows reads a report's table and the report's position in one read
// transaction, so the rows are the table exactly as the sink left it at
// that position, even while the sink writes. Values come back in their
// event form: a NUMERIC column's value as a number with the digits SQLite
// holds (integers exact, other numbers to the 15 significant digits SQLite
// keeps), text columns (STRING, DATE, DATETIME) as the text stored, NULL as
// null. The rows of a content-keyed table carry their row key token under
// KeyColumn. A report without a table has no rows; one without a position
// is at 0.
func (s *Store) ReadRows(ctx context.Context, report string) (rows []event.Row, position uint64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	defer tx.Rollback()
	var seq int64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM _cometstream_position WHERE report = ?`, report).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("position of %s: %w", report, err)
	}
	names, numeric, err := declaredColumns(ctx, tx, report)
	if err != nil || len(names) == 0 {
		return nil, uint64(seq), err
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = Ident(n)
	}
	q, err := tx.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM `+Ident(report))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	// Columns are named by their keys, but for keys SQLite cannot keep as
	// names (tableNames): the table's layout says which.
	keys := slices.Clone(names)
	if err := columnKeys(ctx, tx, report, keys); err != nil {
		return nil, 0, err
	}
	defer q.Close()
	vals := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for q.Next() {
		if err := q.Scan(ptrs...); err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", report, err)
		}
		row := make(event.Row, len(names))
		for i, k := range keys {
			row[k] = eventValue(vals[i], numeric[i])
		}
		rows = append(rows, row)
	}
	if err := q.Err(); err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	return rows, uint64(seq), nil
}

// columnKeys replaces, in names, the names of a report's columns that are
// not their keys with the keys, from the table's layout.
func columnKeys(ctx context.Context, tx *sql.Tx, report string, names []string) error {
	var rawCols, rawKey string
	err := tx.QueryRowContext(ctx, `SELECT columns, key FROM _cometstream_table WHERE report = ?`, report).Scan(&rawCols, &rawKey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("layout of %s: %w", report, err)
	}
	t, err := layout.Decode(report, []byte(rawKey), []byte(rawCols))
	if err != nil {
		return err
	}
	for k, n := range tableNames(t) {
		if n != k {
			if i := slices.Index(names, n); i >= 0 {
				names[i] = k
			}
		}
	}
	return nil
}

// declaredColumns lists a table's columns and whether each is NUMERIC; none
// when the table does not exist.
func declaredColumns(ctx context.Context, q queryer, table string) (names []string, numeric []bool, err error) {
	rows, err := q.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			return nil, nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		names = append(names, n)
		numeric = append(numeric, strings.EqualFold(typ, "NUMERIC"))
	}
	return names, numeric, rows.Err()
}

// eventValue turns what the driver scanned into a value in event form.
func eventValue(v any, numeric bool) event.Value {
	switch x := v.(type) {
	case nil:
		return event.NullValue()
	case int64:
		return event.NumberValue(strconv.FormatInt(x, 10))
	case float64:
		f := strconv.FormatFloat(x, 'g', -1, 64)
		if event.ValidNumber(f) {
			return event.NumberValue(f)
		}
		return event.TextValue(f) // ±Inf and NaN are no JSON numbers
	case []byte:
		v = string(x)
	}
	s := fmt.Sprint(v)
	// A NUMERIC column keeps text that is not a well-formed number as text.
	if numeric && event.ValidNumber(s) {
		return event.NumberValue(s)
	}
	return event.TextValue(s)
}
