package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// dsn is the test server's DSN; without one the test skips (fails in CI).
func dsn(t testing.TB) string {
	t.Helper()
	return testenv.PostgresDSN(t)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// schemaFor gives each test and database name its own schema.
func schemaFor(t *testing.T, name string) string {
	s := "t_" + nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_") + "_" + name
	if len(s) > 63 {
		s = s[len(s)-63:]
		s = "t" + s[1:]
	}
	return s
}

// dial connects to the test server; the caller closes the connection.
func dial(tb testing.TB, d string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), d)
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}

// dropSchema drops a schema and everything in it.
func dropSchema(t *testing.T, d, schema string) {
	t.Helper()
	ctx := context.Background()
	conn := dial(t, d)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+Ident(schema)+` CASCADE`); err != nil {
		t.Fatal(err)
	}
}

// fresh holds the schemas freshSchema has dropped.
var fresh sync.Map

// freshSchema drops a test's schema the first time the test uses it, so a
// schema left by an earlier run cannot leak into this one, and returns it.
func freshSchema(t *testing.T, d, name string) string {
	t.Helper()
	schema := schemaFor(t, name)
	if _, done := fresh.LoadOrStore(schema, true); !done {
		dropSchema(t, d, schema)
	}
	return schema
}

func target(t *testing.T) sinktest.Target {
	d := dsn(t)
	return sinktest.Target{
		Kind: "postgres",
		Args: func(t *testing.T, name string) []string {
			return []string{"--dsn", d, "--schema", freshSchema(t, d, name)}
		},
		Rows: func(t *testing.T, name, report string) []map[string]any {
			return readTable(t, d, schemaFor(t, name), report)
		},
	}
}

// readTable reads a table with values rendered as text in their contract
// form: numeric as written, date as YYYY-MM-DD, timestamptz as RFC 3339 UTC
// with milliseconds.
func readTable(t *testing.T, dsn, schema, report string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	conn := dial(t, dsn)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, report)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.name, &c.typ)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) == 0 {
		return nil
	}
	var sel []string
	for _, c := range cols {
		switch c.typ {
		case "timestamp with time zone":
			sel = append(sel, fmt.Sprintf(`to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`, Ident(c.name)))
		default:
			sel = append(sel, Ident(c.name)+"::text")
		}
	}
	rows, err = conn.Query(ctx, `SELECT `+strings.Join(sel, ", ")+` FROM `+Ident(schema)+`.`+Ident(report))
	if err != nil {
		t.Fatal(err)
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]*string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			if vals[i] == nil {
				m[c.name] = nil
			} else {
				m[c.name] = *vals[i]
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConvergence(t *testing.T)  { sinktest.Convergence(t, target(t)) }
func TestReplay(t *testing.T)       { sinktest.Replay(t, target(t)) }
func TestSchemaChange(t *testing.T) { sinktest.SchemaChange(t, target(t)) }

// TestTypesExact stores every column type and reads it back: numbers keep
// every digit, dates and times are UTC.
func TestTypesExact(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, schema := freshStore(t, d, "types")
	tbl := &consumer.Table{Report: "fees", Key: []string{"ref"}, Columns: []event.Column{
		{Key: "ref", Type: event.TypeString}, {Key: "amount", Type: event.TypeAmount}, {Key: "big", Type: event.TypeNumber},
		{Key: "due", Type: event.TypeDate}, {Key: "at", Type: event.TypeDateTime}, {Key: `x"; DROP TABLE fees; --`, Type: event.TypeString},
	}}
	row := event.Row{
		"ref": event.TextValue("FEE 2026/1 A"), "amount": event.NumberValue("125.50"), "big": event.NumberValue("12345678901234567890.10"),
		"due": event.TextValue("2002-07-24"), "at": event.TextValue("2026-03-31T07:49:21.680Z"), `x"; DROP TABLE fees; --`: event.TextValue("ok"),
	}
	exp := event.Row{"ref": event.TextValue("E"), "amount": event.NumberValue("1.5e3"), "big": event.NumberValue("-2E-2"),
		"due": {}, "at": {}, `x"; DROP TABLE fees; --`: {}}
	err := s.Apply(ctx, &consumer.Batch{
		Changes: []consumer.Change{
			{Kind: consumer.ChangeTable, Table: tbl},
			{Kind: consumer.ChangeUpsert, Table: tbl, Row: row},
			{Kind: consumer.ChangeUpsert, Table: tbl, Row: exp},
		},
		Positions: map[string]uint64{"fees": 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readTable(t, d, schema, "fees")
	want := map[string]map[string]any{
		"FEE 2026/1 A": {"amount": "125.50", "big": "12345678901234567890.10", "due": "2002-07-24", "at": "2026-03-31T07:49:21.680Z", `x"; DROP TABLE fees; --`: "ok"},
		"E":            {"amount": "1500", "big": "-0.02", "due": nil, "at": nil, `x"; DROP TABLE fees; --`: nil},
	}
	if len(got) != 2 {
		t.Fatalf("rows %v", got)
	}
	for _, r := range got {
		for k, v := range want[r["ref"].(string)] {
			if r[k] != v {
				t.Errorf("%v %s = %v, want %v", r["ref"], k, r[k], v)
			}
		}
	}
	pos, _ := s.Positions(ctx)
	if pos["fees"] != 7 {
		t.Errorf("position %v", pos)
	}
	// Deleting by a numeric-free key, and a second upsert of the same key in
	// one batch: the last one wins.
	err = s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{
		{Kind: consumer.ChangeDelete, Table: tbl, Row: event.Row{"ref": event.TextValue("E")}},
		{Kind: consumer.ChangeUpsert, Table: tbl, Row: event.Row{"ref": event.TextValue("F"), "amount": event.NumberValue("1")}},
		{Kind: consumer.ChangeUpsert, Table: tbl, Row: event.Row{"ref": event.TextValue("F"), "amount": event.NumberValue("2")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got = readTable(t, d, schema, "fees")
	if len(got) != 2 {
		t.Fatalf("after delete: %v", got)
	}
	for _, r := range got {
		if r["ref"] == "F" && r["amount"] != "2" {
			t.Errorf("F amount %v, want the last upsert's 2", r["amount"])
		}
		if r["ref"] == "E" {
			t.Error("E was not deleted")
		}
	}
}

func TestPlainDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"125.50": "125.50", "1e3": "1000", "1.5e3": "1500", "-2E-2": "-0.02", "1.25E+1": "12.5", "0e0": "0", "12345": "12345", "5e-1": "0.5",
	} {
		if got := PlainDecimal(in); got != want {
			t.Errorf("PlainDecimal(%s) = %s, want %s", in, got, want)
		}
	}
}
func TestHostile(t *testing.T) { sinktest.Hostile(t, target(t)) }

func TestBootstrapKilled(t *testing.T) { sinktest.BootstrapKilled(t, target(t)) }

// TestStoreSuite runs the suite every consumer.Store passes against the
// PostgreSQL store, in-process.
func TestStoreSuite(t *testing.T) {
	d := dsn(t)
	var schemas sync.Map // *Store → its schema
	sinktest.RunStore(t, sinktest.StoreTarget{
		Open: func(t *testing.T, name string) consumer.Store {
			schema := freshSchema(t, d, "store_"+name)
			s, err := Open(context.Background(), d, schema)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			schemas.Store(s, schema)
			return s
		},
		Rows: func(t *testing.T, s consumer.Store, report string) []event.Row {
			schema, _ := schemas.Load(s)
			return sinktest.RowsFromSQL(t, s, report, readTable(t, d, schema.(string), report))
		},
	})
}
