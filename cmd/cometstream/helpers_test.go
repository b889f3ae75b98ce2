package main

// What the tests of the commands share: running the binary, writing its
// configurations, the NATS server and simulator most tests run it against,
// and reading what a running command serves and logs.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/opshttp"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// runBin runs the binary and returns its exit status and combined output.
func runBin(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, ""
}

// exitCase is a command line, the environment it runs in, and the exit
// status and words its output should have.
type exitCase struct {
	name   string
	env    []string
	args   []string
	status int
	says   string
}

// checkExits runs each case as a subtest; no output says its prefix twice.
func checkExits(t *testing.T, cases []exitCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			status, out := runBin(t, tt.env, tt.args...)
			if status != tt.status || !strings.Contains(out, tt.says) {
				t.Errorf("exit %d, want %d; output should say %q:\n%s", status, tt.status, tt.says, out)
			}
			if strings.Contains(out, "cometstream: cometstream") {
				t.Errorf("a doubled prefix:\n%s", out)
			}
		})
	}
}

// writeFile writes content to a file of that name in a new temporary
// directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// editFile rewrites the file at path with edit.
func editFile(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
}

// setHTTPListen serves the operations endpoint of a producer configuration
// written by testenv.ProducerConfig (http.listen "") on addr.
func setHTTPListen(t *testing.T, config, addr string) {
	t.Helper()
	editFile(t, config, func(s string) string {
		return strings.Replace(s, `listen: ""`, fmt.Sprintf("listen: %q", addr), 1)
	})
}

// personsConfig writes a producer configuration of one report, the
// simulator's persons at base with its API key in $KEY, polled every second
// 20 rows a page; sections are its nats, http and ha sections.
func personsConfig(t *testing.T, sections, base string) string {
	t.Helper()
	return writeFile(t, "c.yaml", fmt.Sprintf(`data_dir: %s
%s
sources:
  - name: sim
    base_url: %s
    reports:
      - {name: persons, api_key_env: KEY, key: [personId], interval: 1s, page_size: 20}
`, t.TempDir(), sections, base))
}

// freeAddr is a loopback address that nothing listens on, for a server to
// listen on next.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// stack is what most of these tests run the commands against: a NATS
// server, a simulator, and a producer configuration of every report of the
// simulator (testenv.ProducerConfig). The server's store, the configuration
// and the producer's data_dir are in dir.
type stack struct {
	dir    string
	url    string // the NATS server's
	js     jetstream.JetStream
	sim    *simulator.Simulator
	config string
	env    []string // the API keys the configuration names
}

// newStack starts a NATS server and a simulator configured by sim, and
// writes the producer's configuration.
func newStack(t *testing.T, sim simulator.Config) *stack {
	t.Helper()
	s := &stack{dir: t.TempDir()}
	s.url = testenv.StartNATS(t, filepath.Join(s.dir, "nats")).ClientURL()
	_, s.js = testenv.Connect(t, s.url)
	var base string
	s.sim, base = testenv.StartSim(t, sim)
	s.config, s.env = testenv.ProducerConfig(t, s.dir, s.url, base, s.sim, "")
	return s
}

// produce starts the producer on the stack's configuration, logging JSON.
func (s *stack) produce(t *testing.T, args ...string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "producer", s.env, append([]string{"produce", "--config", s.config, "--log-format", "json"}, args...)...)
}

// waitFirstPasses waits for a synced receipt of every report.
func (s *stack) waitFirstPasses(t *testing.T) {
	t.Helper()
	for _, r := range s.sim.Reports() {
		waitSynced(t, s.js, r.Name, 0, 30*time.Second)
	}
}

// stateBucket creates the producer's state bucket, which status reads
// first, holding nothing yet.
func stateBucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet")})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// waitSynced waits for the next synced receipt of a report past seq.
func waitSynced(t testing.TB, js jetstream.JetStream, report string, after uint64, timeout time.Duration) (*event.Synced, uint64) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s, err := js.Stream(context.Background(), "COMET")
		if err == nil {
			m, err := s.GetLastMsgForSubject(context.Background(), event.ReportSubject("comet", report, event.KindSynced))
			if err == nil && m.Sequence > after {
				ev, err := event.Decode(m.Data)
				if err != nil {
					t.Fatal(err)
				}
				return ev.Synced, m.Sequence
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no synced receipt for %s within %s", report, timeout)
	return nil, 0
}

// eventStream is the producer's stream.
func eventStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(context.Background(), event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lastSeq is the stream sequence of a report's last event.
func lastSeq(t *testing.T, js jetstream.JetStream, report string) uint64 {
	t.Helper()
	m, err := eventStream(t, js).GetLastMsgForSubject(context.Background(), event.ReportFilter(event.DefaultPrefix, report))
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// openSQLite opens a sink's SQLite database, creating it, for a sink run in
// this process; it is closed when the test ends.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readSQLite reads a table of a sink's database.
func readSQLite(t *testing.T, path, table string) []map[string]any {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM "` + table + `"`)
	if err != nil {
		return nil
	}
	return testenv.SQLRows(t, rows)
}

// stop stops each process, expecting a clean exit.
func stop(t *testing.T, procs ...*testenv.Proc) {
	t.Helper()
	for _, p := range procs {
		if err := p.Stop(); err != nil {
			t.Errorf("%s: %v\n%s", p.Name, err, p.Tail(2000))
		}
	}
}

// tails is the end of the log of each process, for a failure message.
func tails(procs ...*testenv.Proc) string {
	var logs strings.Builder
	for _, p := range procs {
		logs.WriteString("--- " + p.Name + "\n" + p.Tail(3000) + "\n")
	}
	return logs.String()
}

// logValue waits for the process to log msg and returns the value of key
// on that JSON line.
func logValue(t *testing.T, p *testenv.Proc, msg, key string) string {
	t.Helper()
	var v string
	testenv.WaitFor(t, fmt.Sprintf("%s to log %q", p.Name, msg), func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.Logs()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				v, _ = line[key].(string)
				return true
			}
		}
		return false
	})
	return v
}

// opsAddr is the address a command started with --http 127.0.0.1:0 serves
// its operations endpoint on, from its JSON logs.
func opsAddr(t *testing.T, p *testenv.Proc) string {
	t.Helper()
	return logValue(t, p, "operations endpoint", "addr")
}

// get is the status and body of GET url; the status is 0 when nothing
// answers.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// readyz is the status of GET /readyz (0 when nothing answers).
func readyz(addr string) int {
	status, _ := get("http://" + addr + opshttp.ReadyPath)
	return status
}
