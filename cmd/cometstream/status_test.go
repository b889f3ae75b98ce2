package main

// Tests of the commands an operator runs beside a producer, which read its
// state: status, allow-deletes, and the --reports of tail and sink; also as
// users of the embedded server.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestProduceThenStatus runs the producer as a user would, then looks at it
// through its operations endpoint and `cometstream status`.
func TestProduceThenStatus(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 2, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 50}, {Name: "fees", Kind: "fees", Rows: 20},
	}})
	ops := freeAddr(t)
	setHTTPListen(t, w.config, ops)

	producer := w.produce(t, "--log-level", "debug")
	for _, r := range []string{"persons", "fees"} {
		s, _ := waitSynced(t, w.js, r, 0, 30*time.Second)
		if s.Rows != w.sim.Len(r) || !s.Consistent {
			t.Errorf("%s: receipt %+v", r, s)
		}
	}
	if code := readyz(ops); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	code, metrics := get("http://" + ops + "/metrics")
	for _, want := range []string{`cometstream_passes_total{report="persons",result="consistent"}`, `cometstream_events_total{op="created",report="fees"} 20`, "cometstream_snapshot_rows", "cometstream_pass_duration_seconds_bucket",
		`cometstream_user_requests_total{user="sim/default"}`, `cometstream_user_rate_limit{user="sim/default"} 200`, `cometstream_report_stalled{report="persons"} 0`,
		`cometstream_pass_overruns_total{report="fees"} 0`} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	status, out := runBin(t, nil, "status", "--nats", w.url)
	if status != 0 || !strings.Contains(out, "persons") || !strings.Contains(out, "fees") || !strings.Contains(out, "consistent") {
		t.Errorf("status exit %d:\n%s", status, out)
	}
	status, out = runBin(t, nil, "status", "--nats", w.url, "--json")
	var st []reportStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || status != 0 || len(st) != 2 || st[0].LastSync == nil || st[1].State.Checkpoint == 0 {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	for _, r := range w.sim.Reports() {
		if strings.Contains(metrics+out, r.APIKey) {
			t.Errorf("the key of %s appears in /metrics or status", r.Name)
		}
	}
	// status exits 1, naming why, while a report needs an operator.
	w.sim.Revoke("fees", 403)
	testenv.WaitFor(t, "status to say fees is unavailable", func() bool {
		status, out := runBin(t, nil, "status", "--nats", w.url)
		return status == 1 && strings.Contains(out, "UNAVAILABLE (HTTP 403)") && strings.Contains(out, "need attention: fees (unavailable)")
	})
	w.sim.Restore("fees")
	testenv.WaitFor(t, "status to be clean again", func() bool {
		status, _ := runBin(t, nil, "status", "--nats", w.url)
		return status == 0
	})
	stop(t, producer)
}

// TestStatusSaysInconsistent: a report whose passes have been
// inconsistent for producer.InconsistentAlarm passes in a row applies no
// deletes: status names it and exits 1.
func TestStatusSaysInconsistent(t *testing.T) {
	url, js := testenv.StartStream(t)
	kv := stateBucket(t, js)
	ctx := context.Background()
	for _, rec := range []struct{ name, value string }{
		{"persons", `{"checkpoint":1,"key":["personId"],"inconsistent":10}`},
		{"fees", `{"checkpoint":1,"key":["feeRef"],"inconsistent":9}`},
	} {
		if _, err := kv.Put(ctx, rec.name, []byte(rec.value)); err != nil {
			t.Fatal(err)
		}
	}
	status, out := runBin(t, nil, "status", "--nats", url)
	if status != 1 || !strings.Contains(out, "INCONSISTENT for 10 passes") || !strings.Contains(out, "need attention: persons (inconsistent)") || strings.Contains(out, "fees (") {
		t.Errorf("status exit %d:\n%s", status, out)
	}
}

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

	// The bridge names an unknown report of --reports or of an endpoint.
	hooks := writeFile(t, "webhooks.yaml", "allow_private: [127.0.0.0/8]\nendpoints:\n"+
		"  - {name: crm, url: http://127.0.0.1:9/hook, secrets_env: TEST_WEBHOOK_SECRET, reports: [fees]}\n"+
		"  - {name: site, url: http://127.0.0.1:9/hook, secrets_env: TEST_WEBHOOK_SECRET, reports: [nosuch, persons]}\n")
	bridge := testenv.Start(t, "webhook", whEnv, "sink", "webhook", "--nats", url, "--config", hooks, "--reports", "fees,persons", "--log-format", "json")
	testenv.WaitFor(t, "the bridge to name the unknown endpoint report", func() bool { return strings.Contains(bridge.Logs(), warning) })
	if err := bridge.Stop(); err != nil {
		t.Errorf("webhook bridge: %v\n%s", err, bridge.Logs())
	}
	bridge = testenv.Start(t, "webhook", whEnv, "sink", "webhook", "--nats", url, "--config", hooks, "--reports", "nosuch", "--log-format", "json")
	testenv.WaitFor(t, "the bridge to name the unknown --reports report", func() bool { return strings.Contains(bridge.Logs(), warning) })
	if err := bridge.Stop(); err != nil {
		t.Errorf("webhook bridge: %v\n%s", err, bridge.Logs())
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

// TestEmbeddedAuth runs the producer's embedded server with users, then a
// sink, status and tail as the subscriber user, and allow-deletes refused to
// it.
func TestEmbeddedAuth(t *testing.T) {
	dir := t.TempDir()
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 8, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 40}}})
	addr := freeAddr(t)
	pwFile := writeFile(t, "admin.pw", "admin-secret\n")
	config := personsConfig(t, fmt.Sprintf(`nats:
  listen: %s
  embedded:
    users:
      - {name: sink, password_env: TEST_SINK_PW, role: subscriber}
      - {name: admin, password_file: %s, role: admin}
http: {listen: ""}`, addr, pwFile), base)
	env := []string{"KEY=" + sim.Key("persons"), "TEST_SINK_PW=sink-secret"}
	prod := testenv.Start(t, "producer", env, "produce", "--config", config)
	url := "nats://" + addr

	// Anonymous clients are refused.
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, out := runBin(t, nil, "status", "--nats", url)
		if status == 1 && strings.Contains(strings.ToLower(out), "authorization") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an anonymous status: exit %d\n%s\n%s", status, out, prod.Tail(2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	db := filepath.Join(dir, "sink.db")
	sink := testenv.Start(t, "sink", nil, "sink", "sqlite", "--nats", url, "--user", "sink", "--password", "sink-secret", "--db", db)
	var rows []map[string]any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rows = readSQLite(t, db, "persons"); len(rows) == 40 {
			break
		}
	}
	if len(rows) != 40 {
		t.Fatalf("the subscriber's sink holds %d rows, want 40\n%s", len(rows), sink.Tail(2000))
	}
	if status, out := runBin(t, nil, "status", "--nats", url, "--user", "sink", "--password", "sink-secret"); status != 0 || !strings.Contains(out, "persons") {
		t.Errorf("status as the subscriber: exit %d\n%s", status, out)
	}
	// Nothing is held: a release is refused, even to the admin, as bad
	// usage (as produce --allow-deletes refuses it).
	if status, out := runBin(t, nil, "allow-deletes", "--nats", url, "--user", "admin", "--password", "admin-secret", "--report", "persons"); status != 2 || !strings.Contains(out, "holds no deletes") {
		t.Errorf("a release with nothing held: exit %d\n%s", status, out)
	}
	// The report is emptied: its deletes are held.
	sim.Truncate("persons")
	testenv.WaitFor(t, "a hold", func() bool {
		_, out := runBin(t, nil, "status", "--nats", url, "--user", "sink", "--password", "sink-secret")
		return strings.Contains(out, "40 DELETES HELD")
	})
	if status, out := runBin(t, nil, "allow-deletes", "--nats", url, "--user", "sink", "--password", "sink-secret", "--report", "persons"); status == 0 || !strings.Contains(strings.ToLower(out), "permissions violation") {
		t.Errorf("the subscriber released deletes, or was not told why not: exit %d\n%s", status, out)
	}
	if status, out := runBin(t, nil, "allow-deletes", "--nats", url, "--user", "admin", "--password", "admin-secret", "--report", "persons"); status != 0 || !strings.Contains(out, "released the hold of 40 deletes") {
		t.Errorf("the admin could not release deletes: exit %d\n%s", status, out)
	}
	testenv.WaitFor(t, "the release applied", func() bool { return len(readSQLite(t, db, "persons")) == 0 })
	if err := sink.Stop(); err != nil {
		t.Errorf("sink: %v\n%s", err, sink.Tail(2000))
	}
	if err := prod.Stop(); err != nil {
		t.Errorf("producer: %v", err)
	}
	for _, p := range []*testenv.Proc{sink, prod} {
		if strings.Contains(p.Logs(), "sink-secret") || strings.Contains(p.Logs(), "admin-secret") {
			t.Errorf("%s logged a password", p.Name)
		}
	}
}
