package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

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
