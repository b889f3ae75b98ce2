package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestRetentionTrimsTheStreamNotTheSnapshot runs the producer with
// nats.max_age and nats.max_bytes: the stream has them on the server, its
// first pass's events expire while the snapshot buckets keep every row, a
// sink started after that converges from the snapshot, and a restart with
// other limits changes the stream and recovers without a warning.
func TestRetentionTrimsTheStreamNotTheSnapshot(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 8, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 60}, {Name: "fees", Kind: "fees", Rows: 30},
	}})
	// limits writes the nats section's retention, in place of any before.
	limits := func(lines string) {
		editFile(t, w.config, func(s string) string {
			if i := strings.Index(s, "  max_age:"); i >= 0 {
				s = s[:i] + s[strings.Index(s, "http:"):]
			}
			return strings.Replace(s, "http:", lines+"http:", 1)
		})
	}
	limits("  max_age: 2s\n  max_bytes: 64MiB\n")
	prod := w.produce(t)
	_, first := waitSynced(t, w.js, "persons", 0, 30*time.Second)
	waitSynced(t, w.js, "fees", 0, 30*time.Second)

	ctx := context.Background()
	s := eventStream(t, w.js)
	if c := s.CachedInfo().Config; c.MaxAge != 2*time.Second || c.MaxBytes != 64<<20 {
		t.Fatalf("the stream has max age %s, max bytes %d; want 2s, %d", c.MaxAge, c.MaxBytes, 64<<20)
	}
	for _, r := range []string{"persons", "fees"} {
		if err := w.sim.Update(r, 3); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the first pass to expire from the stream", func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.FirstSeq > first
	})

	db := filepath.Join(w.dir, "late.db")
	sink := testenv.Start(t, "sink", nil, "sink", "sqlite", "--nats", w.url, "--db", db, "--log-format", "json")
	testenv.WaitFor(t, "a sink started after the trim to converge", func() bool {
		for _, r := range w.sim.Reports() {
			rows := readSQLite(t, db, r.Name)
			if rows == nil || sinktest.Diff(w.sim.Columns(r.Name), w.sim.KeyColumns(r.Name), w.sim.Rows(r.Name), rows) != "" {
				return false
			}
		}
		return true
	})

	if err := prod.Stop(); err != nil {
		t.Fatalf("producer: %v\n%s", err, prod.Tail(2000))
	}
	limits("  max_age: 1h\n")
	prod = w.produce(t)
	testenv.WaitFor(t, "the restarted producer to produce", func() bool { return strings.Contains(prod.Logs(), `"msg":"producing"`) })
	if c := eventStream(t, w.js).CachedInfo().Config; c.MaxAge != time.Hour || c.MaxBytes != -1 {
		t.Errorf("after a restart with max_age 1h and no max_bytes the stream has max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	logs := prod.Logs()
	if !strings.Contains(logs, `"msg":"stream retention changed to the configuration's","stream":"COMET","max_age":"1h0m0s","max_bytes":"unlimited","was_max_age":"2s","was_max_bytes":"67108864"`) {
		t.Errorf("the restart does not say it changed the limits:\n%s", logs)
	}
	if strings.Contains(logs, `"level":"WARN"`) {
		t.Errorf("a restart over a stream its retention trimmed warned:\n%s", logs)
	}
	w.sim.Update("fees", 2)
	testenv.WaitFor(t, "the sink to follow the restarted producer", func() bool {
		rows := readSQLite(t, db, "fees")
		return rows != nil && sinktest.Diff(w.sim.Columns("fees"), w.sim.KeyColumns("fees"), w.sim.Rows("fees"), rows) == ""
	})
	stop(t, sink, prod)
}
