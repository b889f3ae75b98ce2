package producer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestFencing runs two producers on one report, as if both believed they
// held its lease: the one whose view is stale cannot publish, and the
// stream stays one unbroken chain per row key.
func TestFencing(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 60})
	second := func() *Producer {
		p, err := New(Config{
			Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: []ReportConfig{e.reportConfig("persons")},
			Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Registerer: prometheus.NewRegistry(), MaxInFlight: 64,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leased := func(p *Producer) {
		r := p.reports["persons"]
		r.gate, r.recovered = func() error { return nil }, false
	}
	a := e.open(e.reportConfig("persons"))
	leased(a)
	if _, err := a.Poll(context.Background(), "persons"); err != nil {
		t.Fatal(err)
	}
	b := second()
	leased(b)
	if _, err := b.Poll(context.Background(), "persons"); err != nil {
		t.Fatal(err)
	}
	before := len(e.events())

	// The data changes; b publishes the changes; a, which has not looked at
	// the stream since, tries to publish the same changes.
	e.sim.Update("persons", 5)
	e.sim.Insert("persons", 2, 0)
	if _, err := b.Poll(context.Background(), "persons"); err != nil {
		t.Fatal(err)
	}
	afterB := len(e.events())
	if afterB == before {
		t.Fatal("the second producer published nothing: the test exercised nothing")
	}
	if _, err := a.Poll(context.Background(), "persons"); !errors.Is(err, ErrFenced) {
		t.Fatalf("the stale producer's pass: %v, want fenced", err)
	}
	if n := len(e.events()); n != afterB {
		t.Fatalf("the stale producer added %d events", n-afterB)
	}
	// Fenced, it recovers from the stream and carries on without repeating.
	if _, err := a.Poll(context.Background(), "persons"); err != nil {
		t.Fatal(err)
	}
	final := testenv.Chains(t, e.events())
	if d := testenv.Diff(final["persons"], e.want("persons")); d != "" {
		t.Errorf("the stream does not add up to the report:\n%s", d)
	}
	e.assertKV("persons")
}

// TestFencedByLastSequence: a batch whose expectation of the report's last
// sequence is wrong is refused whole.
func TestFencedByLastSequence(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 30})
	p := e.open(e.reportConfig("persons"))
	r := p.reports["persons"]
	r.gate, r.recovered = func() error { return nil }, false
	e.poll("persons")
	before := len(e.events())
	e.sim.Update("persons", 3)
	r.lastSeq-- // as if another producer had published since
	if _, err := p.Poll(context.Background(), "persons"); !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "last sequence") {
		t.Fatalf("pass with a stale last sequence: %v", err)
	}
	if n := len(e.events()); n != before {
		t.Fatalf("%d events stored from a refused batch", n-before)
	}
	e.poll("persons") // recovers, then publishes
	e.assertKV("persons")
	testenv.Chains(t, e.events())
}

// TestFencedBetweenBatches: a producer whose pass spans several atomic
// batches, each filled while the one before is being stored, loses the
// report to another producer before its last batch. That batch, already
// filled, does not land, and the stream stays one unbroken chain per row
// key.
func TestFencedBetweenBatches(t *testing.T) {
	const rows = 2500 // pages of 1000: batches of 1000, 1000 and 500 rows
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: rows})
	big := func(rc *ReportConfig) { rc.PageSize = 1000 }
	var fetched atomic.Bool // every page of a's pass has arrived
	a := e.openWith(func(c *Config) {
		c.CheckpointEvery = 10 * rows
		c.Progress = func(_ string, pages, lastPage, _ int) { fetched.Store(pages == lastPage+1) }
	}, e.reportConfig("persons", big))
	b, err := New(Config{
		Conn: e.nc, Stream: "COMET", Prefix: "comet", Reports: []ReportConfig{e.reportConfig("persons", big)},
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Registerer: prometheus.NewRegistry(), CheckpointEvery: 10 * rows,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	rb := b.reports["persons"]
	rb.gate, rb.recovered = func() error { return nil }, false

	// a believes it holds the lease throughout. When it is about to send
	// its last batch (the lease is asked before each batch, and before each
	// request, which have all been made by then), its first two batches and
	// their snapshot rows stored, the rows of the last page change and b
	// takes the report over.
	ra := a.reports["persons"]
	var taken int
	ra.gate, ra.recovered = func() error {
		if !fetched.Load() || taken > 0 {
			return nil
		}
		if n := len(e.events()); n != 1+2000 {
			t.Fatalf("%d events stored before the last batch, want the schema and 2000 rows", n)
		}
		testenv.WaitFor(t, "the first two batches' snapshot rows", func() bool { return len(e.kv("persons")) == 2000 })
		for i := 2000; i < rows; i++ {
			if err := e.sim.UpdateAt("persons", i); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Poll(context.Background(), "persons"); err != nil {
			t.Fatalf("the second producer's pass: %v", err)
		}
		taken = len(e.events())
		return nil
	}, false
	_, err = a.Poll(context.Background(), "persons")
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "last sequence") {
		t.Fatalf("the first producer's pass: %v, want fenced by the report's last sequence", err)
	}
	if taken == 0 {
		t.Fatal("the second producer never took over: the test exercised nothing")
	}
	evs := e.events()
	if len(evs) != taken {
		t.Errorf("the fenced-out producer stored %d events after the other took over", len(evs)-taken)
	}
	if d := testenv.Diff(testenv.Chains(t, evs)["persons"], e.want("persons")); d != "" {
		t.Errorf("the stream does not add up to the report:\n%s", d)
	}

	// Fenced, a recovers from the stream and carries on without repeating.
	if s, err := a.Poll(context.Background(), "persons"); err != nil || s.Created+s.Updated+s.Deleted != 0 {
		t.Fatalf("the recovered producer's pass: %+v, %v", s, err)
	}
	e.assertKV("persons")
}
