package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestProduceThenStatus runs the producer as a user would, then looks at it
// through its operations endpoint and `cometstream status`.
func TestProduceThenStatus(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.StartNATS(t, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(t, srv.ClientURL())
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 2, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 50}, {Name: "fees", Kind: "fees", Rows: 20},
	}})
	config, env := crashConfig(t, dir, srv.ClientURL(), base, sim)
	ops := freeAddr(t)
	b, _ := os.ReadFile(config)
	os.WriteFile(config, []byte(strings.Replace(string(b), `listen: ""`, fmt.Sprintf("listen: %q", ops), 1)), 0o600)

	run := startProducer(t, testenv.Binary(t), config, env)
	defer run.cmd.Process.Kill()
	for _, r := range []string{"persons", "fees"} {
		s, _ := waitSynced(t, js, r, 0, 30*time.Second)
		if s.Rows != sim.Len(r) || !s.Consistent {
			t.Errorf("%s: receipt %+v", r, s)
		}
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ops + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
	code, metrics := get("/metrics")
	for _, want := range []string{`cometstream_passes_total{report="persons",result="consistent"}`, `cometstream_events_total{op="created",report="fees"} 20`, "cometstream_snapshot_rows", "cometstream_pass_duration_seconds_bucket",
		`cometstream_user_requests_total{user="sim/default"}`, `cometstream_user_rate_limit{user="sim/default"} 200`, `cometstream_report_stalled{report="persons"} 0`,
		`cometstream_pass_overruns_total{report="fees"} 0`} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	status, out := runBin(t, nil, "status", "--nats", srv.ClientURL())
	if status != 0 || !strings.Contains(out, "persons") || !strings.Contains(out, "fees") || !strings.Contains(out, "consistent") {
		t.Errorf("status exit %d:\n%s", status, out)
	}
	status, out = runBin(t, nil, "status", "--nats", srv.ClientURL(), "--json")
	var st []reportStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || status != 0 || len(st) != 2 || st[0].LastSync == nil || st[1].State.Checkpoint == 0 {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	for _, r := range sim.Reports() {
		if strings.Contains(metrics+out, r.APIKey) {
			t.Errorf("the key of %s appears in /metrics or status", r.Name)
		}
	}
	// status exits 1, naming why, while a report needs an operator.
	sim.Revoke("fees", 403)
	testenv.WaitFor(t, "status to say fees is unavailable", func() bool {
		status, out := runBin(t, nil, "status", "--nats", srv.ClientURL())
		return status == 1 && strings.Contains(out, "UNAVAILABLE (HTTP 403)") && strings.Contains(out, "need attention: fees (unavailable)")
	})
	sim.Restore("fees")
	testenv.WaitFor(t, "status to be clean again", func() bool {
		status, _ := runBin(t, nil, "status", "--nats", srv.ClientURL())
		return status == 0
	})
	run.cmd.Process.Signal(syscall.SIGTERM)
	if err := run.cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, run.logs)
	}
}
