package main

// Tests of what a deployment probes and looks at: `cometstream health`
// against a real operations endpoint, Go's profiles served only when asked
// for (produce's http.pprof, the sinks' --pprof), and the embedded server's
// monitoring listener and system account as `produce` starts them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/cometstream/cometstream/internal/opshttp"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestHealth runs `cometstream health` against an operations endpoint
// started here, whose readiness the test switches.
func TestHealth(t *testing.T) {
	var ready atomic.Bool
	srv, err := opshttp.Start(opshttp.Config{Addr: "127.0.0.1:0", Ready: ready.Load})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	base := "http://" + srv.Addr()
	_, simBase := testenv.StartSim(t, simulator.Config{Seed: 1})
	// An endpoint that never answers: the handler waits for the client to
	// give up.
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)
	closed := freeAddr(t)

	check := func(t *testing.T, status int, says string, args ...string) {
		t.Helper()
		got, out := runBin(t, nil, append([]string{"health"}, args...)...)
		if got != status || !strings.Contains(out, says) {
			t.Errorf("health %v: exit %d, want %d saying %q:\n%s", args, got, status, says, out)
		}
	}
	t.Run("alive", func(t *testing.T) { check(t, 0, "200 OK", "--url", base) })
	t.Run("trailing slash", func(t *testing.T) { check(t, 0, "/healthz: 200 OK", "--url", base+"/") })
	t.Run("not ready", func(t *testing.T) {
		check(t, 1, `/readyz: 503 Service Unavailable: "not ready"`, "--url", base, "--ready")
	})
	t.Run("ready", func(t *testing.T) {
		ready.Store(true)
		defer ready.Store(false)
		check(t, 0, "/readyz: 200 OK: ready", "--url", base, "--ready")
	})
	t.Run("path on the simulator", func(t *testing.T) { check(t, 0, "/_sim/stats: 200 OK", "--url", simBase, "--path", "/_sim/stats") })
	t.Run("no such path", func(t *testing.T) { check(t, 1, "404", "--url", base, "--path", "/nope") })
	t.Run("nobody listening", func(t *testing.T) { check(t, 1, "connection refused", "--url", "http://"+closed) })
	t.Run("timeout", func(t *testing.T) {
		check(t, 1, "/healthz: no answer within 100ms", "--url", hung.URL, "--timeout", "100ms")
	})
	for _, tt := range []struct {
		name, says string
		args       []string
	}{
		{"no url", "--url is required", nil},
		{"not http", `--url: "ftp://x"`, []string{"--url", "ftp://x"}},
		{"query", "without a query", []string{"--url", base + "?x=1"}},
		{"zero timeout", "--timeout: 0s must be positive", []string{"--url", base, "--timeout", "0s"}},
		{"path and ready", "--path and --ready exclude each other", []string{"--url", base, "--ready", "--path", "/x"}},
		{"relative path", `--path: "x"`, []string{"--url", base, "--path", "x"}},
		{"stray argument", `unexpected argument "now"`, []string{"--url", base, "now"}},
	} {
		t.Run("usage/"+tt.name, func(t *testing.T) { check(t, 2, tt.says, tt.args...) })
	}
}

// TestPprofOptIn: the producer (http.pprof) and the sinks (--pprof) serve
// /debug/pprof/ only when asked for; /healthz either way.
func TestPprofOptIn(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(receiver.Close)
	hooks := writeFile(t, "w.yaml", fmt.Sprintf("allow_private: [127.0.0.0/8]\nendpoints:\n  - {name: x, url: %q, secrets: [whsec_ZGVtby13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5]}\n", receiver.URL))
	env := []string{"KEY=" + sim.Key("persons")}
	for _, on := range []bool{false, true} {
		natsURL := testenv.StartNATS(t, t.TempDir()).ClientURL()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		producer := personsConfig(t, fmt.Sprintf(`nats: {url: %s}
http: {listen: "127.0.0.1:0", pprof: %v}`, natsURL, on), base)
		flag := []string{}
		if on {
			flag = []string{"--pprof"}
		}
		for _, args := range [][]string{
			{"produce", "--config", producer},
			append([]string{"sink", "sqlite", "--nats", natsURL, "--db", filepath.Join(t.TempDir(), "s.db"), "--http", "127.0.0.1:0"}, flag...),
			append([]string{"sink", "webhook", "--nats", natsURL, "--config", hooks, "--http", "127.0.0.1:0"}, flag...),
		} {
			name := args[0]
			if name == "sink" {
				name += " " + args[1]
			}
			t.Run(fmt.Sprintf("%s/pprof=%v", name, on), func(t *testing.T) {
				p := testenv.Start(t, name, env, append(args, "--log-format", "json")...)
				addr := opsAddr(t, p)
				if status, _ := get("http://" + addr + opshttp.HealthPath); status != http.StatusOK {
					t.Errorf("/healthz answered %d", status)
				}
				// Stopped once started, so that it stops cleanly.
				testenv.WaitFor(t, name+" ready", func() bool { return readyz(addr) == http.StatusOK })
				for _, path := range []string{opshttp.PprofPath, opshttp.PprofPath + "goroutine?debug=1"} {
					if status, body := get("http://" + addr + path); status != want {
						t.Errorf("%s answered %d, want %d: %.100s", path, status, want, body)
					}
				}
				if err := p.Stop(); err != nil {
					t.Errorf("%s: %v\n%s", name, err, p.Tail(2000))
				}
			})
		}
	}
	for _, args := range [][]string{
		{"sink", "sqlite", "--db", filepath.Join(t.TempDir(), "s.db")},
		{"sink", "webhook", "--config", hooks},
	} {
		if status, out := runBin(t, nil, append(args, "--nats", "nats://127.0.0.1:1", "--pprof")...); status != 2 || !strings.Contains(out, "--pprof serves the profiles on the --http endpoint") {
			t.Errorf("%v --pprof without --http: exit %d\n%s", args, status, out)
		}
	}
}

// TestMonitorEmbedded: nats.monitor serves the embedded server's
// monitoring endpoint, an admin with system_account gets the answer `nats
// server info` asks for, and a monitoring address beyond loopback without
// users is refused (exit 2) naming nats.monitor.
func TestMonitorEmbedded(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 4, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	hash, _ := bcrypt.GenerateFromPassword([]byte("sys-secret"), bcrypt.MinCost)
	config := func(monitor, users string) string {
		return personsConfig(t, fmt.Sprintf(`nats:
  listen: 127.0.0.1:0
  monitor: %s
%s
http: {listen: ""}`, monitor, users), base)
	}
	env := []string{"KEY=" + sim.Key("persons"), "TEST_ADMIN_PW=admin-secret"}
	p := testenv.Start(t, "producer", env, "produce", "--log-format", "json", "--config", config("127.0.0.1:0", fmt.Sprintf(`  embedded:
    users:
      - {name: admin, password_env: TEST_ADMIN_PW, role: admin}
      - {name: sys, password_hash: "%s", role: admin, system_account: true}`, hash)))
	monitor := logValue(t, p, "embedded NATS monitoring", "url")
	var varz struct {
		Version string `json:"version"`
	}
	status, body := get(monitor + "/varz")
	if err := json.Unmarshal([]byte(body), &varz); status != http.StatusOK || err != nil || varz.Version != server.VERSION {
		t.Errorf("/varz: %d %v version %q, want %q", status, err, varz.Version, server.VERSION)
	}

	url := logValue(t, p, "embedded NATS server", "url")
	ask := func(user, pw string) error {
		nc, err := nats.Connect(url, nats.UserInfo(user, pw))
		if err != nil {
			return err
		}
		defer nc.Close()
		msg, err := nc.Request("$SYS.REQ.SERVER.PING.VARZ", nil, 5*time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(msg.Data), `"version":"`+server.VERSION+`"`) {
			return fmt.Errorf("reply %.200s", msg.Data)
		}
		return nil
	}
	if err := ask("sys", "sys-secret"); err != nil {
		t.Errorf("the system admin's $SYS.REQ.SERVER.PING.VARZ: %v", err)
	}
	if err := ask("admin", "admin-secret"); err == nil {
		t.Error("an admin without system_account reached the system account")
	}
	logValue(t, p, "producing", "stream") // stopped once started, so that it stops cleanly
	if err := p.Stop(); err != nil {
		t.Errorf("producer: %v\n%s", err, p.Tail(2000))
	}
	if strings.Contains(p.Logs(), "sys-secret") || strings.Contains(p.Logs(), "admin-secret") {
		t.Error("the producer logged a password")
	}

	status, out := runBin(t, env, "produce", "--config", config("0.0.0.0:0", ""))
	if status != 2 || !strings.Contains(out, "nats.monitor: monitoring listener: refusing to listen on a non-loopback address without authentication") {
		t.Errorf("non-loopback monitoring without users: exit %d\n%s", status, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	status, out = runBin(t, env, "produce", "--config", config(ln.Addr().String(), ""))
	if status != 2 || !strings.Contains(out, "nats.monitor: monitoring listener: the address is in use") {
		t.Errorf("a taken monitoring port: exit %d\n%s", status, out)
	}
}
