package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestUnknownReportsAreNamed: tail and sink with --reports naming a report
// the stream does not have say so, with the reports it has, and keep
// waiting; allow-deletes refuses such a report, and a report holding
// nothing, as bad usage.
func TestUnknownReportsAreNamed(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 10}, {Name: "fees", Kind: "fees", Rows: 10},
	}})
	url := w.url

	// No producer yet: nothing is known.
	status, out := runBin(t, nil, "allow-deletes", "--nats", url, "--report", "fees")
	if status != 2 || !strings.Contains(out, "no producer state") {
		t.Errorf("allow-deletes before any producer: exit %d, want 2:\n%s", status, out)
	}

	prod := w.produce(t)
	w.waitFirstPasses(t)

	const warning = `"msg":"the stream has no such report yet: waiting for it all the same (misspelt? a producer may add it later)","reports":"nosuch","stream_has":"fees, persons"`
	tail := testenv.Start(t, "tail", nil, "tail", "--nats", url, "--reports", "nosuch,fees", "--ops", "updated", "--color", "never", "--log-format", "json")
	testenv.WaitFor(t, "tail to name the unknown report", func() bool { return strings.Contains(tail.Logs(), warning) })
	// And it waits on: an update of fees still arrives (one every 200ms
	// until one is printed: tail reads only what is published once it
	// has its consumer).
	polls := 0
	testenv.WaitFor(t, "tail to print an update of fees", func() bool {
		if polls++; polls%20 == 1 {
			w.sim.Update("fees", 1)
		}
		return strings.Contains(tail.Logs(), `"type":"comet.row.updated"`)
	})
	if err := tail.Stop(); err != nil {
		t.Errorf("tail: %v\n%s", err, tail.Logs())
	}

	sink := testenv.Start(t, "sink", nil, "sink", "sqlite", "--nats", url, "--db", filepath.Join(w.dir, "s.db"), "--reports", "nosuch", "--log-format", "json")
	testenv.WaitFor(t, "the sink to name the unknown report and start", func() bool {
		return strings.Contains(sink.Logs(), warning) && strings.Contains(sink.Logs(), `"msg":"sink starting"`)
	})
	if err := sink.Stop(); err != nil {
		t.Errorf("sink: %v\n%s", err, sink.Logs())
	}

	for _, tc := range []struct {
		report, says string
	}{
		{"nosuch", `--report: no report "nosuch" in the producer's state (it has fees, persons)`},
		{"fees", "fees: the report holds no deletes: nothing to release"},
	} {
		status, out := runBin(t, nil, "allow-deletes", "--nats", url, "--report", tc.report)
		if status != 2 || !strings.Contains(out, tc.says) {
			t.Errorf("allow-deletes --report %s: exit %d, want 2 saying %q:\n%s", tc.report, status, tc.says, out)
		}
	}
	if err := prod.Stop(); err != nil {
		t.Errorf("producer: %v", err)
	}
}

// TestDemoWarningsAreText: the demo's warnings (here: cells that do not
// convert) are text beside its readable output, never JSON, terminal or
// not.
func TestDemoWarningsAreText(t *testing.T) {
	p := testenv.Start(t, "demo", nil, "demo", "--dir", t.TempDir(), "--nats-listen", "127.0.0.1:0", "--persons", "50", "--interval", "1s", "--shape", "persons:bad-cells=2")
	testenv.WaitFor(t, "the demo to warn about the bad cells", func() bool {
		return strings.Contains(p.Logs(), `level=WARN msg="cells that do not convert`)
	})
	if err := p.Stop(); err != nil {
		t.Errorf("demo: %v\n%s", err, p.Tail(2000))
	}
	for _, line := range strings.Split(p.Logs(), "\n") {
		if strings.HasPrefix(line, "{") {
			t.Errorf("a JSON line in the demo's output: %s", line)
		}
	}
}
