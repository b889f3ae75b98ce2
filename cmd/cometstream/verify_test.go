package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cometstream/cometstream/consumer/postgres"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
	"github.com/cometstream/cometstream/internal/verify"
)

// verifyTarget is a kind of sink database the verify tests run against.
type verifyTarget struct {
	kind string
	// args name database name, for the sink and for verify.
	args func(name string) []string
	// open opens it for reading, as verify does; it fails until the sink
	// has created it.
	open func(t *testing.T, name string) (verify.Database, error)
	// exec runs SQL on it behind the sink's back; table quotes a report's
	// table name for it.
	exec  func(t *testing.T, name, query string)
	table func(name, report string) string
	// token is the column of a content-keyed table holding the token.
	token string
}

func sqliteVerifyTarget(t *testing.T) verifyTarget {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name+".db") }
	return verifyTarget{
		kind: "sqlite",
		args: func(name string) []string { return []string{"--db", path(name)} },
		open: func(t *testing.T, name string) (verify.Database, error) {
			s, err := sqlite.OpenReadOnly(context.Background(), path(name))
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { s.Close() })
			return s, nil
		},
		exec: func(t *testing.T, name, query string) {
			db, err := sql.Open("sqlite", "file:"+path(name)+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
		table: func(_, report string) string { return sqlite.Ident(report) },
		token: sqlite.KeyColumn,
	}
}

var nonIdentRE = regexp.MustCompile(`[^a-z0-9_]+`)

func postgresVerifyTarget(t *testing.T) verifyTarget {
	d := testenv.PostgresDSN(t)
	schema := func(name string) string {
		s := "v_" + nonIdentRE.ReplaceAllString(strings.ToLower(t.Name()), "_") + "_" + name
		if len(s) > 63 {
			s = "v" + s[len(s)-62:]
		}
		return s
	}
	exec := func(t *testing.T, query string) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	dropped := map[string]bool{}
	return verifyTarget{
		kind: "postgres",
		args: func(name string) []string {
			if s := schema(name); !dropped[s] {
				// A schema left by an earlier run must not leak into this one.
				exec(t, `DROP SCHEMA IF EXISTS `+postgres.Ident(s)+` CASCADE`)
				dropped[s] = true
			}
			return []string{"--dsn", d, "--schema", schema(name)}
		},
		open: func(t *testing.T, name string) (verify.Database, error) {
			s, err := postgres.OpenReadOnly(context.Background(), d, schema(name))
			if err != nil {
				return nil, err
			}
			t.Cleanup(s.Close)
			return s, nil
		},
		exec:  func(t *testing.T, _, query string) { exec(t, query) },
		table: func(name, report string) string { return postgres.Ident(schema(name)) + "." + postgres.Ident(report) },
		token: postgres.KeyColumn,
	}
}

// verifyWorld is a stack whose simulator has a keyed report, one with
// decimal amounts and a content-keyed one, and the kind of database its
// sinks write.
type verifyWorld struct {
	*stack
	t      *testing.T
	target verifyTarget
}

var verifyReports = []string{"fees", "goals", "persons"}

// newVerifyWorld starts NATS and the simulator, with persons rows of
// persons, answering each request after latency.
func newVerifyWorld(t *testing.T, target verifyTarget, persons int, latency time.Duration) *verifyWorld {
	s := newStack(t, simulator.Config{Seed: 33, Latency: latency, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: persons},
		{Name: "fees", Kind: "fees", Rows: 30},
		{Name: "goals", Kind: "events", Rows: 40},
	}})
	return &verifyWorld{stack: s, t: t, target: target}
}

func (w *verifyWorld) sink(db string) *testenv.Proc {
	args := append([]string{"sink", w.target.kind, "--nats", w.url, "--log-format", "json"}, w.target.args(db)...)
	return testenv.Start(w.t, "sink "+db, nil, args...)
}

// verify runs the command and returns its exit status and output.
func (w *verifyWorld) verify(db string, extra ...string) (int, string) {
	w.t.Helper()
	args := append([]string{"verify", w.target.kind, "--nats", w.url, "--log-format", "json"}, w.target.args(db)...)
	return runBin(w.t, nil, append(args, extra...)...)
}

// open opens a database the sink has created.
func (w *verifyWorld) open(name string) verify.Database {
	w.t.Helper()
	db, err := w.target.open(w.t, name)
	if err != nil {
		w.t.Fatal(err)
	}
	return db
}

// lastSeq is the stream sequence of a report's last event.
func (w *verifyWorld) lastSeq(report string) uint64 {
	w.t.Helper()
	return lastSeq(w.t, w.js, report)
}

// mismatch says how a database differs from the simulator ("" when it holds
// exactly its rows), compared independently of package verify: keyed
// reports as the sink suites compare them, the content-keyed one as a
// multiset of whole rows.
func (w *verifyWorld) mismatch(db verify.Database) string {
	var out []string
	for _, r := range verifyReports {
		rows, _, err := db.ReadRows(context.Background(), r)
		if err != nil {
			w.t.Fatal(err)
		}
		key := w.sim.KeyColumns(r)
		if slices.Equal(key, []string{event.ContentKey}) {
			got, want := make([]string, 0, len(rows)), []string{}
			for _, row := range rows {
				delete(row, w.target.token)
				got = append(got, testenv.Canonical(row))
			}
			for _, row := range w.sim.Rows(r) {
				want = append(want, testenv.Canonical(row))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				out = append(out, fmt.Sprintf("%s: %d rows, want %d, or different ones", r, len(got), len(want)))
			}
			continue
		}
		raw := make([]map[string]any, len(rows))
		for i, row := range rows {
			raw[i] = map[string]any{}
			for k, v := range row {
				if !v.IsNull() {
					raw[i][k] = v.Raw
				} else {
					raw[i][k] = nil
				}
			}
		}
		if d := sinktest.Diff(w.sim.Columns(r), key, w.sim.Rows(r), raw); d != "" {
			out = append(out, r+": "+d)
		}
	}
	return strings.Join(out, "\n")
}

// waitConverged waits until the database holds the simulator's rows and
// the sink has applied every event of the stream.
func (w *verifyWorld) waitConverged(name string, procs ...*testenv.Proc) {
	w.t.Helper()
	var db verify.Database
	deadline := time.Now().Add(60 * time.Second)
	for {
		var d string
		if db == nil {
			var err error
			if db, err = w.target.open(w.t, name); err != nil {
				d = "not created yet: " + err.Error()
			}
		}
		if db != nil {
			d = w.mismatch(db)
		}
		if d == "" {
			pos, err := db.Positions(context.Background())
			if err != nil {
				w.t.Fatal(err)
			}
			for _, r := range verifyReports {
				if last := w.lastSeq(r); pos[r] < last {
					d += fmt.Sprintf("%s: sink at %d, stream at %d\n", r, pos[r], last)
				}
			}
		}
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s never converged:\n%s\n%s", name, d, tails(procs...))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestVerifySQLite(t *testing.T)   { testVerify(t, sqliteVerifyTarget) }
func TestVerifyPostgres(t *testing.T) { testVerify(t, postgresVerifyTarget) }

func testVerify(t *testing.T, target func(*testing.T) verifyTarget) {
	t.Run("equal, then changed behind the sink's back", func(t *testing.T) { verifyTamper(t, target(t)) })
	t.Run("behind", func(t *testing.T) { verifyBehind(t, target(t)) })
	t.Run("while the producer runs", func(t *testing.T) { verifyChurn(t, target(t)) })
}

// plusOne adds 1 to a number, exactly.
func plusOne(t *testing.T, v event.Value) event.Value {
	r, err := v.Rat()
	if err != nil {
		t.Fatal(err)
	}
	return event.NumberValue(r.Add(r, big.NewRat(1, 1)).FloatString(2))
}

var equalRE = regexp.MustCompile(`(?m)^(fees|goals|persons): equal, \d+ rows? compared at position (\d+)$`)

// verifyTamper materializes the reports, checks that verify finds the
// database equal, then changes, adds and removes rows directly in the
// database and checks that verify names each, with its key.
func verifyTamper(t *testing.T, target verifyTarget) {
	w := newVerifyWorld(t, target, 60, time.Millisecond)
	producer, sink := w.produce(t), w.sink("main")
	w.waitConverged("main", producer, sink)
	// The producer first, then the sink once it has applied everything.
	stop(t, producer)
	w.waitConverged("main", sink)
	stop(t, sink)

	status, out := w.verify("main")
	if status != 0 {
		t.Fatalf("verify of a converged database: exit %d\n%s", status, out)
	}
	for _, r := range []struct {
		name string
		rows int
	}{{"persons", 60}, {"fees", 30}, {"goals", 40}} {
		line := fmt.Sprintf("%s: equal, %d rows compared at position %d", r.name, r.rows, w.lastSeq(r.name))
		if !strings.Contains(out, line+"\n") {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	// Behind the sink's back: a person renamed, a fee's amount changed, a
	// person added, one removed, and one of the content-keyed goals removed.
	persons, fees := w.sim.Rows("persons"), w.sim.Rows("fees")
	renamed, removed, fee := persons[3], persons[7], fees[2]
	goals, _, err := w.open("main").ReadRows(context.Background(), "goals")
	if err != nil || len(goals) == 0 {
		t.Fatalf("goals: %v, %v", goals, err)
	}
	goalToken := goals[0][w.target.token].Raw
	pt, ft, gt := w.target.table("main", "persons"), w.target.table("main", "fees"), w.target.table("main", "goals")
	for _, q := range []string{
		`UPDATE ` + pt + ` SET "lastName" = 'Tampered' WHERE "personId" = ` + renamed["personId"].Raw,
		`DELETE FROM ` + pt + ` WHERE "personId" = ` + removed["personId"].Raw,
		`INSERT INTO ` + pt + ` ("personId", "firstName") VALUES (999999, 'Intruder')`,
		`UPDATE ` + ft + ` SET "amount" = "amount" + 1 WHERE "feeRef" = '` + fee["feeRef"].Raw + `'`,
		`DELETE FROM ` + gt + ` WHERE ` + sqlite.Ident(w.target.token) + ` = '` + goalToken + `'`,
	} {
		w.target.exec(t, "main", q)
	}
	status, out = w.verify("main", "--timeout", "2s")
	if status != 1 {
		t.Fatalf("verify of a changed database: exit %d, want 1\n%s", status, out)
	}
	for _, want := range []string{
		fmt.Sprintf(`persons: row %s differs: lastName: database "Tampered", snapshot %q`+"\n", renamed["personId"].Raw, renamed["lastName"].Raw),
		fmt.Sprintf("persons: missing row %s: in the snapshot, not in the database\n", removed["personId"].Raw),
		"persons: extra row 999999: in the database, not in the snapshot\n",
		fmt.Sprintf("persons: 3 rows differ, 61 rows compared at position %d\n", w.lastSeq("persons")),
		"fees: 1 row differs, 30 rows compared",
		fmt.Sprintf("goals: missing row %s: in the snapshot, not in the database\n", goalToken),
		"goals: 1 row differs, 40 rows compared",
		"verify: 3 of 3 reports differ or could not be compared",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The fee's key is its token; the amounts are numbers, the database's
	// as it keeps them (126.5 in SQLite, 126.50 in PostgreSQL).
	m := regexp.MustCompile(`fees: row (\S+) \(feeRef="([^"]+)"\) differs: amount: database (\S+), snapshot (\S+)\n`).FindStringSubmatch(out)
	if m == nil || m[1] != event.JoinToken(fee["feeRef"].Raw) || m[2] != fee["feeRef"].Raw || m[4] != fee["amount"].Raw || !verify.SameValue(event.TypeAmount, event.NumberValue(m[3]), plusOne(t, fee["amount"]), true) {
		t.Errorf("fee %s with amount %s plus 1 is not named as changed: %q\n%s", fee["feeRef"].Raw, fee["amount"].Raw, m, out)
	}
	// Only the reports asked for.
	status, out = w.verify("main", "--reports", "goals")
	if status != 1 || strings.Contains(out, "persons") || !strings.Contains(out, "goals: 1 row differs") {
		t.Errorf("verify --reports goals: exit %d\n%s", status, out)
	}
}

// verifyBehind stops the sink before the last changes and checks that
// verify reports it behind, with both positions, after --timeout.
func verifyBehind(t *testing.T, target verifyTarget) {
	w := newVerifyWorld(t, target, 60, time.Millisecond)
	producer, sink := w.produce(t), w.sink("main")
	w.waitConverged("main", producer, sink)
	stop(t, sink)
	pos, err := w.open("main").Positions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before := pos["persons"]
	if err := w.sim.Update("persons", 3); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the producer to publish the changes", func() bool {
		evs := testenv.Events(t, w.js, event.DefaultStream, before)
		for _, ev := range evs {
			if ev.Row != nil && ev.Row.Report == "persons" && ev.Row.Op == event.OpUpdated {
				return true
			}
		}
		return false
	})
	stop(t, producer)
	last := w.lastSeq("persons")
	start := time.Now()
	status, out := w.verify("main", "--timeout", "1500ms", "--reports", "persons")
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("verify gave up after %s, before --timeout", took)
	}
	want := fmt.Sprintf("persons: sink behind: at %d, stream at %d\n", before, last)
	if status != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, want 1 saying %q:\n%s", status, want, out)
	}

	// Once the sink has caught up, the same database verifies.
	sink = w.sink("main")
	status, out = w.verify("main", "--timeout", "30s")
	if status != 0 {
		t.Errorf("after the sink caught up: exit %d\n%s", status, out)
	}
	stop(t, sink)
}

// verifyChurn verifies while the simulator keeps changing and the producer
// keeps publishing: every run finds each report equal at a position the
// sink reached, and runs prove they overlapped the producer's publishing
// by comparing at a position the stream had not reached when they started.
func verifyChurn(t *testing.T, target verifyTarget) {
	// A pass over 2000 persons, 20 a page, takes longer than the interval
	// between passes: the producer publishes nearly all the time.
	w := newVerifyWorld(t, target, 2000, 10*time.Millisecond)
	producer, sink := w.produce(t), w.sink("main")
	w.waitConverged("main", producer, sink)
	stopChurn := sync.OnceFunc(testenv.Churn(w.sim, 10*time.Millisecond))
	defer stopChurn()
	overlapped, positions := 0, map[string]map[uint64]bool{}
	for run := 0; run < 3 || (overlapped < 2 && run < 12); run++ {
		started := map[string]uint64{}
		for _, r := range verifyReports {
			started[r] = w.lastSeq(r)
		}
		status, out := w.verify("main", "--timeout", "30s", "--log-level", "debug")
		if status != 0 {
			t.Fatalf("verify %d while the producer runs: exit %d\n%s\n--- producer\n%s\n--- sink\n%s", run, status, out, producer.Tail(2000), sink.Tail(2000))
		}
		lines := equalRE.FindAllStringSubmatch(out, -1)
		if len(lines) != 3 {
			t.Fatalf("verify %d: want 3 reports equal:\n%s", run, out)
		}
		compared := map[string]uint64{}
		for _, m := range lines {
			pos, _ := strconv.ParseUint(m[2], 10, 64)
			if pos > started[m[1]] {
				overlapped++
			}
			if positions[m[1]] == nil {
				positions[m[1]] = map[uint64]bool{}
			}
			positions[m[1]][pos], compared[m[1]] = true, pos
		}
		// The next run compares every report at a new position.
		testenv.WaitFor(t, "the producer to publish every report again", func() bool {
			for _, r := range verifyReports {
				if w.lastSeq(r) <= compared[r] {
					return false
				}
			}
			return true
		})
	}
	stopChurn()
	if overlapped < 2 {
		t.Errorf("verify compared at a position the stream reached during the run only %d times", overlapped)
	}
	t.Logf("positions compared: %v; %d comparisons overlapped publishing", positions, overlapped)
	stop(t, sink, producer)
}

// emptySinkDB creates a sink's SQLite database, holding no report yet, in
// dir and returns its path.
func emptySinkDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "sink.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return path
}

// TestVerifyUsage checks the exit status of bad usage (2) and of failures
// (1), and that the message names what was wrong.
func TestVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	db := emptySinkDB(t, dir)
	checkExits(t, []exitCase{
		{"no kind", nil, []string{"verify"}, 2, "verify needs a kind: sqlite or postgres"},
		{"unknown kind", nil, []string{"verify", "mysql"}, 2, `unknown sink "mysql"`},
		{"no database", nil, []string{"verify", "sqlite", "--nats", "nats://127.0.0.1:1"}, 2, "--db is required"},
		{"bad timeout", nil, []string{"verify", "sqlite", "--db", db, "--timeout", "soon"}, 2, "-timeout"},
		{"negative timeout", nil, []string{"verify", "sqlite", "--db", db, "--timeout", "-1s"}, 2, "--timeout: -1s is negative"},
		{"bad report name", nil, []string{"verify", "sqlite", "--db", db, "--reports", "persons,Bad.Name"}, 2, `--reports: "Bad.Name" is not a report name`},
		{"unknown flag", nil, []string{"verify", "sqlite", "--db", db, "--bogus"}, 2, "-bogus"},
		{"bad log level", nil, []string{"verify", "sqlite", "--db", db, "--nats", "nats://127.0.0.1:1", "--log-level", "loud"}, 2, "--log-level"},
		{"no NATS URL", []string{"NATS_URL="}, []string{"verify", "sqlite", "--db", db}, 2, "no NATS URL"},
		{"no DSN", []string{"COMETSTREAM_POSTGRES_DSN="}, []string{"verify", "postgres"}, 2, "--dsn is required"},
		{"bad schema", nil, []string{"verify", "postgres", "--dsn", "postgres://127.0.0.1:1/x", "--schema", "a-b"}, 2, `--schema: "a-b"`},
		{"no such database", nil, []string{"verify", "sqlite", "--db", filepath.Join(dir, "nope.db"), "--nats", "nats://127.0.0.1:1"}, 1, "nope.db"},
		{"not a sink's database", nil, []string{"verify", "sqlite", "--db", writeFile(t, "x.db", ""), "--nats", "nats://127.0.0.1:1"}, 1, "not a sink database"},
		{"NATS unreachable", nil, []string{"verify", "sqlite", "--db", db, "--nats", "nats://127.0.0.1:1"}, 1, "connect to NATS"},
		{"PostgreSQL unreachable", nil, []string{"verify", "postgres", "--dsn", "postgres://u@127.0.0.1:1/x?connect_timeout=2", "--nats", "nats://127.0.0.1:1"}, 1, "--dsn"},
	})
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("verify created the database it was asked to check")
	}
}

// TestVerifyNoStream: a database checked against a NATS server without the
// producer's stream is a failure, not a pass.
func TestVerifyNoStream(t *testing.T) {
	srv := testenv.StartNATS(t, t.TempDir())
	db := emptySinkDB(t, t.TempDir())
	status, out := runBin(t, nil, "verify", "sqlite", "--db", db, "--nats", srv.ClientURL())
	if status != 1 || !strings.Contains(out, "stream COMET") {
		t.Errorf("exit %d, want 1 naming the stream:\n%s", status, out)
	}
}

// TestVerifyDescribe checks how differences are printed: the key as its
// token, with the key values when the token is encoded or composite, and
// values as JSON.
func TestVerifyDescribe(t *testing.T) {
	num, txt := event.NumberValue, event.TextValue
	long := strings.Repeat("é", 60)
	tests := []struct {
		name string
		d    verify.Difference
		key  []string
		want string
	}{
		{"missing", verify.Difference{Kind: verify.Missing, Key: "100007", KeyValues: event.Row{"personId": num("100007")}}, []string{"personId"},
			"missing row 100007: in the snapshot, not in the database"},
		{"extra, encoded token", verify.Difference{Kind: verify.Extra, Key: event.JoinToken("FEE 1"), KeyValues: event.Row{"feeRef": txt("FEE 1")}}, []string{"feeRef"},
			`extra row =RkVFIDE (feeRef="FEE 1"): in the database, not in the snapshot`},
		{"changed, composite key", verify.Difference{Kind: verify.Changed, Key: "1/A", KeyValues: event.Row{"competitionId": num("1"), "matchNo": txt("A")}, Columns: []verify.ColumnDiff{
			{Column: "venue", Database: txt("Swansea"), Snapshot: txt("Wrexham")}, {Column: "attendance", Database: event.NullValue(), Snapshot: num("7300")},
		}}, []string{"competitionId", "matchNo"},
			`row 1/A (competitionId=1, matchNo="A") differs: venue: database "Swansea", snapshot "Wrexham"; attendance: database null, snapshot 7300`},
		{"content keyed", verify.Difference{Kind: verify.Missing, Key: "h0123-2"}, []string{event.ContentKey},
			"missing row h0123-2: in the snapshot, not in the database"},
		{"long text", verify.Difference{Kind: verify.Changed, Key: "1", Columns: []verify.ColumnDiff{{Column: "bio", Database: txt(long), Snapshot: txt("x\"y")}}}, []string{"id"},
			`row 1 differs: bio: database "` + strings.Repeat("é", 40) + `"… (120 bytes), snapshot "x\"y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(tt.d, tt.key); got != tt.want {
				t.Errorf("describe:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
