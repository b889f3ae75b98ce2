package postgres

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
)

// freshStore opens a store on an empty schema of its own.
func freshStore(t *testing.T, d, name string) (*Store, string) {
	t.Helper()
	schema := schemaFor(t, name)
	dropSchema(t, d, schema)
	s, err := Open(context.Background(), d, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, schema
}

// TestReadRows reads back what the sink wrote, in event form with every
// digit, with the position, from a read-only store.
func TestReadRows(t *testing.T) {
	d := dsn(t)
	s, schema := freshStore(t, d, "read")
	// Whatever the session's settings, the text is the contract's.
	r, err := OpenReadOnly(context.Background(), withOptions(t, d, "-c TimeZone=Asia/Kolkata -c DateStyle=SQL,DMY"), schema)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Numbers keep every digit, in plain notation.
	sinktest.ReadsBack(t, s, r, map[string]string{"42": "42", "125.50": "125.50", "12345678901234567890.10": "12345678901234567890.10", "-1.5e3": "-1500", "12345678901234567890": "12345678901234567890"})
}

// withOptions adds server options to a URL DSN.
func withOptions(t *testing.T, d, options string) string {
	u, err := url.Parse(d)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Skip("the DSN is not a URL")
	}
	q := u.Query()
	q.Set("options", options)
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads + as itself
	return u.String()
}

// TestReadRowsConsistent reads while a sink writes: the rows are always
// those of the position read with them.
func TestReadRowsConsistent(t *testing.T) {
	d := dsn(t)
	s, schema := freshStore(t, d, "consistent")
	r, err := OpenReadOnly(context.Background(), d, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sinktest.ReadsConsistent(t, s, r, 100)
}

// TestOpenReadOnly needs no more than reading, refuses a schema without a
// sink's tables, and creates nothing.
func TestOpenReadOnly(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	missing := schemaFor(t, "missing")
	conn := dial(t, d)
	defer conn.Close(ctx)
	conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+Ident(missing)+` CASCADE`)
	if _, err := OpenReadOnly(ctx, d, missing); err == nil || !strings.Contains(err.Error(), "holds no sink tables") {
		t.Errorf("opening a schema without sink tables: %v", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, missing).Scan(&exists); err != nil || exists {
		t.Errorf("OpenReadOnly created schema %s (%v)", missing, err)
	}

	// A role that may only read opens and reads the sink's schema.
	s, schema := freshStore(t, d, "readonly")
	table := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: []event.Column{{Key: "id", Type: event.TypeNumber}}}
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeTable, Table: table},
		{Kind: consumer.ChangeUpsert, Table: table, Row: event.Row{"id": event.NumberValue("1")}}}, Positions: map[string]uint64{"people": 3}}); err != nil {
		t.Fatal(err)
	}
	const role = "cometstream_test_reader"
	conn.Exec(ctx, `DROP ROLE IF EXISTS `+role)
	if _, err := conn.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Skipf("cannot create a role to read with: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), d)
		if err == nil {
			c.Exec(context.Background(), `DROP OWNED BY `+role)
			c.Exec(context.Background(), `DROP ROLE `+role)
			c.Close(context.Background())
		}
	})
	for _, q := range []string{`GRANT USAGE ON SCHEMA ` + Ident(schema) + ` TO ` + role, `GRANT SELECT ON ALL TABLES IN SCHEMA ` + Ident(schema) + ` TO ` + role} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(d)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Skip("the DSN is not a URL")
	}
	u.User = url.User(role)
	if _, err := Open(ctx, u.String(), schema); err == nil {
		t.Fatal("the read-only role could open the store for writing: the test proves nothing")
	}
	r, err := OpenReadOnly(ctx, u.String(), schema)
	if err != nil {
		t.Fatalf("OpenReadOnly as a role that may only read: %v", err)
	}
	defer r.Close()
	rows, pos, err := r.ReadRows(ctx, "people")
	if err != nil || pos != 3 || len(rows) != 1 {
		t.Errorf("ReadRows as a reader = %v at %d, %v", rows, pos, err)
	}
}
