package sinktest

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// Target is one kind of sink.
type Target struct {
	// Kind is the sink command: sqlite or postgres.
	Kind string
	// Args returns the arguments naming a database, a fresh one per name.
	Args func(t *testing.T, name string) []string
	// Rows reads a report's table in the named database, one map per row,
	// values as database/sql scans them; nil when the table does not exist.
	Rows func(t *testing.T, name, report string) []map[string]any
}

// world is NATS, a simulator and a producer configuration.
type world struct {
	t      *testing.T
	target Target
	url    string
	js     jetstream.JetStream
	sim    *simulator.Simulator
	config string
	env    []string
}

func newWorld(t *testing.T, target Target, specs []simulator.ReportSpec) *world {
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 21, Latency: time.Millisecond, Reports: specs})
	config, env := testenv.ProducerConfig(t, dir, srv.ClientURL(), base, sim, "")
	return &world{t: t, target: target, url: srv.ClientURL(), js: js, sim: sim, config: config, env: env}
}

func (w *world) producer() *testenv.Proc {
	return testenv.Start(w.t, "producer", w.env, "produce", "--config", w.config, "--log-format", "json")
}

func (w *world) sink(db string, extra ...string) *testenv.Proc {
	args := append([]string{"sink", w.target.Kind, "--nats", w.url, "--log-format", "json"}, w.target.Args(w.t, db)...)
	return testenv.Start(w.t, "sink "+db, nil, append(args, extra...)...)
}

// diff compares a report's table with the simulator's rows, values in their
// contract form; "" when equal.
func (w *world) diff(db, report string) string {
	rows := w.target.Rows(w.t, db, report)
	if rows == nil {
		return "no table " + report
	}
	return Diff(w.sim.Columns(report), w.sim.KeyColumns(report), w.sim.Rows(report), rows)
}

// waitConverged waits until every report's table equals the simulator.
func (w *world) waitConverged(db string, procs ...*testenv.Proc) {
	w.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		var diffs []string
		for _, r := range w.sim.Reports() {
			if d := w.diff(db, r.Name); d != "" {
				diffs = append(diffs, r.Name+": "+d)
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				logs.WriteString("--- " + p.Name + "\n" + p.Tail(3000) + "\n")
			}
			w.t.Fatalf("%s never converged:\n%s\n%s", db, strings.Join(diffs, "\n"), logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func specs() []simulator.ReportSpec {
	return []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 300, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 100, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 60, User: "finance"},
	}
}

// Convergence changes the simulator's data at random over many passes while
// the producer and the sink are each killed (SIGKILL) and restarted at
// random moments, one report gaining a column on the way; at the end every
// table equals the simulator's data row by row.
func Convergence(t *testing.T, target Target) {
	if testing.Short() {
		t.Skip("kills and restarts processes for half a minute")
	}
	w := newWorld(t, target, specs())
	producer, sink := w.producer(), w.sink("main")
	stopChurn := testenv.Churn(w.sim, 20*time.Millisecond)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 16 {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		if i == 8 {
			w.sim.AddColumn("matches", "referee", "Referee")
		}
		if rng.IntN(2) == 0 {
			producer.Kill()
			time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
			producer = w.producer()
		} else {
			sink.Kill()
			time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
			sink = w.sink("main")
		}
	}
	stopChurn()
	w.waitConverged("main", producer, sink)
	if err := sink.Stop(); err != nil {
		t.Errorf("sink: %v\n%s", err, sink.Tail(2000))
	}
	if err := producer.Stop(); err != nil {
		t.Errorf("producer: %v\n%s", err, producer.Tail(2000))
	}
	testenv.Chains(t, testenv.Events(t, w.js, "COMET", 0))
}

// Replay materializes the reports, trims the stream to its last few
// messages, and checks that a sink on a fresh database bootstraps from the
// snapshot, converges to the same tables, and that both databases compare
// equal.
func Replay(t *testing.T, target Target) {
	w := newWorld(t, target, specs())
	producer, a := w.producer(), w.sink("a")
	w.waitConverged("a", producer, a)
	for _, r := range []string{"persons", "matches", "fees"} {
		w.sim.Insert(r, 3, 0)
		w.sim.Update(r, 5)
		w.sim.Delete(r, 2, -1)
	}
	w.waitConverged("a", producer, a)

	ctx := context.Background()
	s, err := w.js.Stream(ctx, "COMET")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs = 10
	if _, err := w.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.State.FirstSeq < 100 {
		t.Fatalf("the stream still starts at %d: it was not trimmed", info.State.FirstSeq)
	}
	w.sim.Update("persons", 4)
	w.sim.Delete("fees", 1, 0)
	w.waitConverged("a", producer, a)

	b := w.sink("b")
	w.waitConverged("b", producer, b)
	for _, r := range w.sim.Reports() {
		ra, rb := canonicalRows(w.target.Rows(t, "a", r.Name)), canonicalRows(w.target.Rows(t, "b", r.Name))
		if !slices.Equal(ra, rb) {
			t.Errorf("%s: the two databases differ (%d and %d rows)", r.Name, len(ra), len(rb))
		}
	}
	for _, p := range []*testenv.Proc{a, b, producer} {
		if err := p.Stop(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
}

// SchemaChange adds a column mid-stream and checks that no row is lost and
// every row has the new column's value.
func SchemaChange(t *testing.T, target Target) {
	w := newWorld(t, target, []simulator.ReportSpec{{Name: "matches", Kind: "matches", Rows: 80}})
	producer, sink := w.producer(), w.sink("main")
	w.waitConverged("main", producer, sink)
	w.sim.AddColumn("matches", "referee", "Referee")
	w.sim.Insert("matches", 2, 0)
	w.waitConverged("main", producer, sink)
	rows := w.target.Rows(t, "main", "matches")
	if len(rows) != 82 {
		t.Errorf("%d rows after the schema change, want 82", len(rows))
	}
	for _, row := range rows {
		if v, ok := row["referee"]; !ok || v == nil {
			t.Fatalf("a row lacks the new column: %v", row)
		}
	}
	sink.Stop()
	producer.Stop()
}

// bootstrapRows is the size of the snapshot BootstrapKilled loads: large
// enough that the load lasts well past its first batch.
const bootstrapRows = 100_000

// BootstrapKilled kills the sink (SIGKILL) while it loads a new database
// from a snapshot of 100k rows, once it has written its first batch: the
// database holds nothing of the report, neither a row nor a position,
// because the load is one transaction. Started again, the sink loads the
// report whole, no row missing or twice. Then a rebuild with --from-start
// is killed the same way: the table still holds every row it had, and a
// rebuild let finish loads them all again.
func BootstrapKilled(t *testing.T, target Target) {
	srv := testenv.StartNATS(t, t.TempDir())
	_, js := testenv.Connect(t, srv.ClientURL())
	PublishSnapshot(t, js, bootstrapRows)
	want, cols := Persons(t, bootstrapRows)
	sink := func(extra ...string) *testenv.Proc {
		args := append([]string{"sink", target.Kind, "--nats", srv.ClientURL(), "--log-format", "json", "--log-level", "debug"}, target.Args(t, "main")...)
		return testenv.Start(t, "sink", nil, append(args, extra...)...)
	}
	killMidway := func(p *testenv.Proc) {
		t.Helper()
		testenv.WaitFor(t, "the first batch of the bootstrap", func() bool { return strings.Contains(p.Logs(), `"msg":"bootstrap: rows written"`) })
		p.Kill()
		if strings.Contains(p.Logs(), `"msg":"bootstrapped from the snapshot"`) {
			t.Fatalf("the bootstrap ended before the kill:\n%s", p.Tail(2000))
		}
	}
	converged := func(p *testenv.Proc) {
		t.Helper()
		var d string
		deadline := time.Now().Add(120 * time.Second)
		for d = "no table"; d != "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if rows := target.Rows(t, "main", "persons"); rows != nil {
				d = Diff(cols, []string{"personId"}, want, rows)
			}
		}
		if d != "" {
			t.Fatalf("the table never equalled the snapshot: %s\n%s", d, p.Tail(2000))
		}
	}

	p := sink()
	killMidway(p)
	if rows := target.Rows(t, "main", "persons"); len(rows) != 0 {
		t.Fatalf("a bootstrap killed mid-way left %d rows", len(rows))
	}
	p = sink()
	converged(p)
	if err := p.Stop(); err != nil {
		t.Fatalf("sink: %v\n%s", err, p.Tail(2000))
	}

	p = sink("--from-start")
	killMidway(p)
	if rows := target.Rows(t, "main", "persons"); len(rows) != bootstrapRows {
		t.Fatalf("a rebuild killed mid-way left %d rows, want the %d the table had", len(rows), bootstrapRows)
	}
	p = sink("--from-start")
	testenv.WaitFor(t, "the rebuild", func() bool { return strings.Contains(p.Logs(), `"msg":"bootstrapped from the snapshot"`) })
	converged(p)
	if err := p.Stop(); err != nil {
		t.Fatalf("sink: %v\n%s", err, p.Tail(2000))
	}
}
