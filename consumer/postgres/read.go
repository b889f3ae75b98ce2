package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/layout"
)

// OpenReadOnly connects to an existing sink schema for reading only: it
// creates nothing, so a role with USAGE on the schema and SELECT on its
// tables is enough. It fails when the schema holds no sink bookkeeping.
// Apply and Reset are not meant for the store it returns.
func OpenReadOnly(ctx context.Context, dsn, schema string) (*Store, error) {
	s, err := connect(ctx, dsn, schema)
	if err != nil {
		return nil, err
	}
	var pos, tables *string
	err = s.pool.QueryRow(ctx, `SELECT to_regclass($1)::text, to_regclass($2)::text`, s.name("_cometstream_position"), s.name("_cometstream_table")).Scan(&pos, &tables)
	if err == nil && (pos == nil || tables == nil) {
		err = fmt.Errorf("schema %s holds no sink tables (_cometstream_position, _cometstream_table)", schema)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// ReadRows reads a report's table and the report's position in one
// read-only, repeatable-read transaction, so the rows are the table exactly
// as the sink left it at that position, even while the sink writes. Values
// come back in their event form: numeric as a number with every digit the
// database holds, date as YYYY-MM-DD, timestamptz as RFC 3339 in UTC with
// milliseconds (as the producer writes DATETIME), any other type as its
// text, NULL as null. The rows of a content-keyed table carry their row key
// token under KeyColumn. A report without a table has no rows; one without
// a position is at 0.
func (s *Store) ReadRows(ctx context.Context, report string) (rows []event.Row, position uint64, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	defer tx.Rollback(ctx)
	var seq int64
	err = tx.QueryRow(ctx, `SELECT seq FROM `+s.name("_cometstream_position")+` WHERE report = $1`, report).Scan(&seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, fmt.Errorf("position of %s: %w", report, err)
	}
	q, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, s.schema, report)
	if err != nil {
		return nil, 0, fmt.Errorf("columns of %s: %w", report, err)
	}
	type column struct{ name, typ, key string }
	cols, err := pgx.CollectRows(q, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.name, &c.typ)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("columns of %s: %w", report, err)
	}
	if len(cols) == 0 {
		return nil, uint64(seq), nil
	}
	// Columns are named by their keys, but for keys PostgreSQL cannot
	// keep as names (Column): the table's layout says which.
	keyOf, err := s.columnKeys(ctx, tx, report)
	if err != nil {
		return nil, 0, err
	}
	for i := range cols {
		if k, ok := keyOf[cols[i].name]; ok {
			cols[i].key = k
		} else {
			cols[i].key = cols[i].name
		}
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = textOf(Ident(c.name), c.typ)
	}
	q, err = tx.Query(ctx, `SELECT `+strings.Join(sel, ", ")+` FROM `+s.name(report))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	vals := make([]pgtype.Text, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	_, err = pgx.ForEachRow(q, ptrs, func() error {
		row := make(event.Row, len(cols))
		for i, c := range cols {
			switch {
			case !vals[i].Valid:
				row[c.key] = event.NullValue()
			case c.typ == "numeric" && event.ValidNumber(vals[i].String):
				row[c.key] = event.NumberValue(vals[i].String)
			default: // text, dates, and numeric NaN or Infinity
				row[c.key] = event.TextValue(vals[i].String)
			}
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", report, err)
	}
	return rows, uint64(seq), nil
}

// columnKeys maps the names of a report's columns that are not their keys
// back to the keys, from the table's layout.
func (s *Store) columnKeys(ctx context.Context, tx pgx.Tx, report string) (map[string]string, error) {
	var raw, rawKey []byte
	err := tx.QueryRow(ctx, `SELECT columns, key FROM `+s.name("_cometstream_table")+` WHERE report = $1`, report).Scan(&raw, &rawKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layout of %s: %w", report, err)
	}
	t, err := layout.Decode(report, rawKey, raw)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	keys := slices.Clone(t.Key)
	for _, c := range t.Columns {
		keys = append(keys, c.Key)
	}
	for _, k := range keys {
		if n := Column(k); n != k {
			out[n] = k
		}
	}
	return out, nil
}

// textOf renders a column of the given information_schema data type as
// the text of its event form, whatever the session's DateStyle and
// TimeZone.
func textOf(col, dataType string) string {
	switch dataType {
	case "date":
		return `to_char(` + col + `, 'YYYY-MM-DD')`
	case "timestamp with time zone":
		return `to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
	}
	return col + `::text`
}
