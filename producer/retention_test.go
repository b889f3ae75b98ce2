package producer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// streamConfig reads the event stream's configuration from the server.
func (e *env) streamConfig() jetstream.StreamConfig {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), "COMET")
	if err != nil {
		e.t.Fatal(err)
	}
	return s.CachedInfo().Config
}

// TestRetentionIsTheConfiguration: the stream is created with the
// configured limits, a restart with other limits (or none) changes them on
// the server and says so, and one with the same limits changes nothing.
func TestRetentionIsTheConfiguration(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 10})
	limits := func(age time.Duration, size int64) func(*Config) {
		return func(c *Config) { c.MaxAge, c.MaxBytes = age, size }
	}
	e.openWith(limits(time.Hour, 64<<20), e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != time.Hour || c.MaxBytes != 64<<20 {
		t.Fatalf("created with max age %s, max bytes %d; want 1h, %d", c.MaxAge, c.MaxBytes, 64<<20)
	}
	if strings.Contains(e.logs.String(), "stream retention changed") {
		t.Errorf("a new stream's limits were logged as a change:\n%s", e.logs)
	}

	e.openWith(limits(3*time.Hour, 0), e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != 3*time.Hour || c.MaxBytes != -1 {
		t.Errorf("after a restart with 3h and no size limit: max age %s, max bytes %d", c.MaxAge, c.MaxBytes)
	}
	if !strings.Contains(e.logs.String(), `"msg":"stream retention changed to the configuration's","stream":"COMET","max_age":"3h0m0s","max_bytes":"unlimited","was_max_age":"1h0m0s","was_max_bytes":"67108864"`) {
		t.Errorf("the change is not logged with the old and new limits:\n%s", e.logs)
	}

	// A limit set with the nats CLI is the configuration's to decide.
	cfg := e.streamConfig()
	cfg.MaxBytes = 1 << 30
	if _, err := e.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	e.openWith(func(*Config) {}, e.reportConfig("persons"))
	if c := e.streamConfig(); c.MaxAge != 0 || c.MaxBytes != -1 {
		t.Errorf("unlimited in the configuration: max age %s, max bytes %d remain", c.MaxAge, c.MaxBytes)
	}

	before := strings.Count(e.logs.String(), "stream retention changed")
	e.openWith(func(*Config) {}, e.reportConfig("persons"))
	if after := strings.Count(e.logs.String(), "stream retention changed"); after != before {
		t.Errorf("a restart with the same limits changed the stream (%d change lines, were %d)", after, before)
	}

	if _, err := New(Config{Conn: e.nc, Stream: "COMET", Prefix: "comet", DuplicateWindow: time.Minute, MaxAge: time.Second}); err == nil || !strings.Contains(err.Error(), "shorter than the duplicate window") {
		t.Errorf("max age under the duplicate window: %v", err)
	}
}

// TestRecoveryAfterTrimming: a stream trimmed past a report's checkpoint
// (what retention does while another report keeps publishing) loses
// nothing of a report that stopped cleanly: the producer recovers, says so
// at info level, and publishes nothing again. Without configured limits,
// the same gap is someone else's doing, and a warning.
func TestRecoveryAfterTrimming(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 40}, simulator.ReportSpec{Name: "fees", Kind: "fees", Rows: 30})
	retention := func(c *Config) { c.MaxAge = time.Hour }
	reports := []ReportConfig{e.reportConfig("persons"), e.reportConfig("fees")}
	e.openWith(retention, reports...)
	e.poll("persons")
	e.poll("fees")
	ctx := context.Background()
	s, err := e.js.Stream(ctx, "COMET")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	last := info.State.LastSeq
	// Retention leaves fees' receipt and removes everything before it:
	// persons' checkpoint, its receipt, is gone, and so are fees' rows.
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(last)); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(ctx); info.State.FirstSeq != last {
		t.Fatalf("the stream starts at %d after the purge, want %d", info.State.FirstSeq, last)
	}

	e.logs.Reset()
	e.openWith(retention, reports...)
	const info1, warning = "the stream's retention has removed events past the report's checkpoint", "the stream no longer holds every event"
	if logs := e.logs.String(); strings.Contains(logs, warning) || !strings.Contains(logs, `"level":"INFO","msg":"`+info1) || !strings.Contains(logs, `"report":"persons"`) {
		t.Errorf("recovery from a stream its retention trimmed: want the info line for persons and no warning:\n%s", logs)
	}
	e.assertKV("persons")
	e.assertKV("fees")
	e.poll("persons")
	e.poll("fees")
	for _, ev := range e.eventsAfter(last) {
		if ev.Type != event.TypeSynced || ev.Synced.Created+ev.Synced.Updated+ev.Synced.Deleted != 0 {
			t.Errorf("after recovery from a trimmed stream a pass published %s %s", ev.Type, ev.Subject)
		}
	}

	e.sim.Insert("fees", 3, 0)
	e.poll("fees")
	info, _ = s.Info(ctx)
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq)); err != nil {
		t.Fatal(err)
	}
	e.logs.Reset()
	e.openWith(func(*Config) {}, reports...)
	if logs := e.logs.String(); !strings.Contains(logs, `"level":"WARN","msg":"`+warning) {
		t.Errorf("recovery from a stream purged without configured limits did not warn:\n%s", logs)
	}
}
