package main

import (
	"encoding/json"
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
