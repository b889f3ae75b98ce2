package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// load bulk-loads the upserts into the store, one Write per slice.
func load(t *testing.T, s *Store, table *consumer.Table, writes ...[]consumer.Change) {
	t.Helper()
	ctx := context.Background()
	ld, err := s.BeginLoad(ctx, table)
	if err != nil {
		t.Fatalf("BeginLoad: %v", err)
	}
	for _, w := range writes {
		b := &consumer.LoadBatch{Table: table}
		for _, ch := range w {
			b.Tokens = append(b.Tokens, ch.Token)
			for _, c := range table.Columns {
				b.Values = append(b.Values, ch.Row[c.Key])
			}
		}
		if err := ld.Write(ctx, b); err != nil {
			ld.Abort(ctx)
			t.Fatalf("Write: %v", err)
		}
	}
	if err := ld.Commit(ctx, map[string]uint64{table.Report: 1}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// TestLoadValues loads every kind of value through the binary COPY and the
// upserts after it, and reads back what PostgreSQL itself makes of each
// literal: the encoder writes numbers, dates and times exactly as the
// server would parse their text.
func TestLoadValues(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, schema := freshStore(t, d, "values")
	numbers := []string{"0", "-0", "0.0", "-0.000", "1", "-1", "7", "10000", "9999", "99990000", "100000000", "0.0001", "0.00001",
		"-0.5", "123.4500", "-123.4500", "1000.000", "12345678901234567890.10", "1.5e3", "-2E-2", "1e-10", "1.25E+1", "5e40",
		"3" + strings.Repeat("0", 1200) + ".5"} // too long for the fast path
	dates := []string{"2002-07-24", "0001-01-01", "1900-02-28", "1969-12-31", "1970-01-01", "1999-12-31", "2000-01-01", "2000-02-29", "9999-12-31"}
	times := []string{"2026-03-31T07:49:21.680Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2000-01-01T00:00:00.000001Z",
		"0001-01-01T00:00:00Z", "2026-03-31T09:49:21.680+02:00", "1999-12-31T23:59:59.5-05:30"}
	texts := []string{"", "it's", `back\slash`, "tab\there", "new\nline", "carriage\rreturn", "ünïcode 🙂", `"quoted"`, "\\N"}
	table := &consumer.Table{Report: "vals", Key: []string{"k"}, Columns: []event.Column{
		{Key: "k", Type: event.TypeString}, {Key: "n", Type: event.TypeNumber}, {Key: "a", Type: event.TypeAmount},
		{Key: "d", Type: event.TypeDate}, {Key: "ts", Type: event.TypeDateTime}, {Key: "s", Type: event.TypeString},
	}}
	size := max(len(numbers), len(dates), len(times), len(texts)) + 1
	// The row of token i with the values of v; the last v is all nulls.
	values := func(i, v int) event.Row {
		r := event.Row{"k": event.TextValue(fmt.Sprint(i)), "n": {}, "a": {}, "d": {}, "ts": {}, "s": {}}
		if v%size != size-1 {
			r["n"], r["a"] = event.NumberValue(numbers[v%len(numbers)]), event.NumberValue(numbers[(v+3)%len(numbers)])
			r["d"], r["ts"], r["s"] = event.TextValue(dates[v%len(dates)]), event.TextValue(times[v%len(times)]), event.TextValue(texts[v%len(texts)])
		}
		return r
	}
	row := func(i int) event.Row { return values(i, i) }
	var copied, again []consumer.Change
	for i := range size {
		copied = append(copied, consumer.Change{Kind: consumer.ChangeUpsert, Table: table, Token: fmt.Sprint(i), Row: values(i, i+1)})
		again = append(again, consumer.Change{Kind: consumer.ChangeUpsert, Table: table, Token: fmt.Sprint(i), Row: row(i)})
	}
	conn := dial(t, d)
	defer conn.Close(ctx)
	const asText = `%s::numeric::text, %s::numeric::text, %s::date::text, to_char((%s::timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), %s::text`
	check := func(rowOf func(token int) event.Row) {
		t.Helper()
		for i := range size {
			r := rowOf(i)
			lit := func(k string) any {
				if r[k].IsNull() {
					return nil
				}
				return r[k].Raw
			}
			var want, got [5]*string
			err := conn.QueryRow(ctx, `SELECT `+fmt.Sprintf(asText, "$1::text", "$2::text", "$3::text", "$4::text", "$5::text"), lit("n"), lit("a"), lit("d"), lit("ts"), lit("s")).
				Scan(&want[0], &want[1], &want[2], &want[3], &want[4])
			if err != nil {
				t.Fatal(err)
			}
			err = conn.QueryRow(ctx, `SELECT `+fmt.Sprintf(asText, "n", "a", "d", "ts", "s")+` FROM `+Ident(schema)+`.vals WHERE k = $1`, r["k"].Raw).
				Scan(&got[0], &got[1], &got[2], &got[3], &got[4])
			if err != nil {
				t.Fatalf("token %d, row %s: %v", i, r["k"].Raw, err)
			}
			for j, col := range []string{"n", "a", "d", "ts", "s"} {
				if (want[j] == nil) != (got[j] == nil) || want[j] != nil && *want[j] != *got[j] {
					t.Errorf("row %s column %s (%q): got %v, want %v", r["k"].Raw, col, r[col].Raw, deref(got[j]), deref(want[j]))
				}
			}
		}
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM `+Ident(schema)+`.vals`).Scan(&n)
		if n != size {
			t.Errorf("%d rows, want %d", n, size)
		}
	}
	// Half the tokens come again, and end with their second row (upserts).
	load(t, s, table, copied, again[:size/2])
	check(func(i int) event.Row {
		if i < size/2 {
			return row(i)
		}
		return values(i, i+1)
	})
	// A new load starts from an empty table; now the other half comes again.
	load(t, s, table, append(copied[size/2:], again...))
	check(row)
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// TestLoadPrimaryKey checks that a load leaves the table's primary key as
// it was, with its name, whether it set it aside while the rows went in or
// (a foreign key refers to the table) kept it.
func TestLoadPrimaryKey(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, schema := freshStore(t, d, "pkey")
	table := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: []event.Column{{Key: "id", Type: event.TypeNumber}, {Key: "name", Type: event.TypeString}}}
	person := func(id, name string) consumer.Change {
		return consumer.Change{Kind: consumer.ChangeUpsert, Table: table, Token: id, Row: event.Row{"id": event.NumberValue(id), "name": event.TextValue(name)}}
	}
	key := func() string {
		t.Helper()
		var def string
		if err := s.pool.QueryRow(ctx, `SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, s.name("people")).Scan(&def); err != nil {
			t.Fatalf("the primary key: %v", err)
		}
		return def
	}
	count := func(cond string) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.name("people")+` WHERE `+cond).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Keys equal as numbers, not as text, are distinct tokens: both rows go
	// in, and the one written last is kept when the key is built.
	load(t, s, table, []consumer.Change{person("1", "a"), person("2", "a")}, []consumer.Change{person("1.0", "b")})
	if got, want := key(), `people_pkey PRIMARY KEY (id)`; got != want {
		t.Errorf("after a load the key is %q, want %q", got, want)
	}
	if n, b := count("true"), count("id = 1 AND name = 'b' AND id::text = '1.0'"); n != 2 || b != 1 {
		t.Errorf("%d rows, %d of them 1.0 b; want 2 and 1", n, b)
	}

	// More rows again than are kept waiting for the key: it is built
	// mid-load, and the rows after go in as upserts.
	var first, second []consumer.Change
	for i := range maxAgain + 10 {
		first = append(first, person(fmt.Sprint(i), "a"))
		second = append(second, person(fmt.Sprint(i), "b"))
	}
	load(t, s, table, first, second, []consumer.Change{person("-1", "c")}, []consumer.Change{person("7.0", "c"), person("-1.00", "d")})
	if got, want := key(), `people_pkey PRIMARY KEY (id)`; got != want {
		t.Errorf("after a load the key is %q, want %q", got, want)
	}
	if n, b := count("true"), count("name = 'b'"); n != maxAgain+11 || b != maxAgain+9 || count("id = -1 AND name = 'd'") != 1 || count("id = 7 AND name = 'c'") != 1 {
		t.Errorf("%d rows, %d of them as written last; want %d and %d, and -1 d, 7 c", n, b, maxAgain+11, maxAgain+9)
	}

	if _, err := s.pool.Exec(ctx, `CREATE TABLE `+Ident(schema)+`.club (person numeric REFERENCES `+s.name("people")+`)`); err != nil {
		t.Fatal(err)
	}
	load(t, s, table, []consumer.Change{person("1", "x"), person("2", "y"), person("1", "z")})
	if got, want := key(), `people_pkey PRIMARY KEY (id)`; got != want {
		t.Errorf("after a load of a table a foreign key refers to the key is %q, want %q", got, want)
	}
	rows := readTable(t, d, schema, "people")
	if len(rows) != 2 || rowByKey(rows, "id", "1")["name"] != "z" {
		t.Errorf("rows %v, want 1 z and 2 y", rows)
	}
}

func rowByKey(rows []map[string]any, col, val string) map[string]any {
	for _, r := range rows {
		if r[col] == val {
			return r
		}
	}
	return nil
}

// TestLoadColumnRetyped loads a table one of whose columns was given
// another type by hand: its values go through SQL's casts.
func TestLoadColumnRetyped(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	s, schema := freshStore(t, d, "retyped")
	table := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: []event.Column{{Key: "id", Type: event.TypeNumber}, {Key: "age", Type: event.TypeNumber}}}
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeTable, Table: table}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ALTER TABLE `+s.name("people")+` ALTER COLUMN age TYPE integer`); err != nil {
		t.Fatal(err)
	}
	load(t, s, table, []consumer.Change{
		{Kind: consumer.ChangeUpsert, Table: table, Token: "1", Row: event.Row{"id": event.NumberValue("1"), "age": event.NumberValue("31")}},
		{Kind: consumer.ChangeUpsert, Table: table, Token: "2", Row: event.Row{"id": event.NumberValue("2"), "age": event.NumberValue("4e1")}},
	})
	rows := readTable(t, d, schema, "people")
	if len(rows) != 2 || rowByKey(rows, "id", "1")["age"] != "31" || rowByKey(rows, "id", "2")["age"] != "40" {
		t.Errorf("rows %v, want ages 31 and 40", rows)
	}
}
