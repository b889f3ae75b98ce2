package producer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
