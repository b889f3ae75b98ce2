package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// natsConfig is a producer configuration whose nats section is given.
func natsConfig(t *testing.T, nats string) string {
	t.Helper()
	return writeFile(t, "c.yaml", fmt.Sprintf(`data_dir: %s
nats:
  duplicate_window: 1s
%shttp:
  listen: ""
sources:
  - name: faw
    base_url: http://127.0.0.1:1
    reports:
      - name: players
        api_key_env: TEST_PLAYERS_KEY
        key: [personId]
`, t.TempDir(), nats))
}

// TestNATSURLSaysWhereItCameFrom: a producer that cannot connect names the
// URL (without its password) and where it came from, and a nats.listen
// written in the file starts the embedded server although $NATS_URL is
// exported (as the README suggests for the CLI).
func TestNATSURLSaysWhereItCameFrom(t *testing.T) {
	key := "TEST_PLAYERS_KEY=k"
	for _, tc := range []struct {
		name, nats string
		env, args  []string
		says       string
	}{
		{"from the environment", "", []string{"NATS_URL=nats://cs:hunter2@127.0.0.1:1"}, nil, "(NATS URL nats://cs:xxxxx@127.0.0.1:1, from $NATS_URL)"},
		{"from the file", "  url: nats://127.0.0.1:1\n", []string{"NATS_URL=nats://127.0.0.1:2"}, nil, "(NATS URL nats://127.0.0.1:1, from nats.url)"},
		{"from the flag", "  url: nats://127.0.0.1:2\n", []string{"NATS_URL=nats://127.0.0.1:2"}, []string{"--nats", "nats://127.0.0.1:1"}, "(NATS URL nats://127.0.0.1:1, from --nats)"},
		{"the flag over nats.listen", "  listen: 127.0.0.1:0\n", nil, []string{"--nats", "nats://127.0.0.1:1"}, "(NATS URL nats://127.0.0.1:1, from --nats)"},
		{"ha has no embedded server", "  listen: 127.0.0.1:0\n", []string{"NATS_URL=nats://127.0.0.1:1"}, nil, "(NATS URL nats://127.0.0.1:1, from $NATS_URL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := natsConfig(t, tc.nats)
			if tc.name == "ha has no embedded server" {
				editFile(t, cfg, func(s string) string { return s + "ha:\n  lease_ttl: 6s\n" })
			}
			args := append([]string{"produce", "--config", cfg}, tc.args...)
			status, out := runBin(t, append(tc.env, key), args...)
			if status != 1 || !strings.Contains(out, "cometstream: connect to NATS: ") || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want 1; output should say %q:\n%s", status, tc.says, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("the password of the URL was printed:\n%s", out)
			}
		})
	}

	// nats.listen in the file: the embedded server, $NATS_URL or not.
	listen := freeAddr(t)
	cfg := natsConfig(t, fmt.Sprintf("  listen: %s\n  max_age: 1h\n", listen))
	p := testenv.Start(t, "producer", []string{key, "NATS_URL=nats://127.0.0.1:1"}, "produce", "--config", cfg, "--log-format", "json")
	testenv.WaitFor(t, "the producer to produce", func() bool { return strings.Contains(p.Logs(), `"msg":"producing"`) })
	logs := p.Logs()
	for _, want := range []string{
		`"msg":"nats.listen is set in the configuration: starting the embedded server, not connecting to $NATS_URL`,
		`"msg":"embedded NATS server","url":"nats://` + listen + `","version":"`,
		`"msg":"producing","nats":"nats://` + listen + `","from":"the embedded server (nats.listen)"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the producer's log lacks %s:\n%s", want, logs)
		}
	}
	// The server's banner is debug: not in an info log.
	for _, banner := range []string{"Starting nats-server", "JETSTREAM", "Starting JetStream", "Server is ready"} {
		if strings.Contains(logs, banner) {
			t.Errorf("the embedded server's banner is in the info log (%q):\n%s", banner, logs)
		}
	}
	_, js := testenv.Connect(t, "nats://"+listen)
	s, err := js.Stream(context.Background(), "COMET")
	if err != nil || s.CachedInfo().Config.MaxAge != time.Hour {
		t.Errorf("the embedded server on nats.listen has no stream COMET with max_age 1h: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, p.Tail(2000))
	}
}

// TestStopDuringStartUp: SIGTERM while the producer waits to claim the
// stream is a clean stop (exit 0), and leaves the claim it was watching
// alone.
func TestStopDuringStartUp(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	ctx := context.Background()
	kv, err := w.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet"), History: 5})
	if err != nil {
		t.Fatal(err)
	}
	// A producer that stopped renewing its claim: the new one watches it
	// for seconds before taking it over.
	rec, _ := json.Marshal(map[string]any{"instance": "other", "host": "elsewhere", "pid": 1, "since": time.Now().UTC()})
	rev, err := kv.Put(ctx, event.WriterKey, rec)
	if err != nil {
		t.Fatal(err)
	}
	p := w.produce(t)
	testenv.WaitFor(t, "the producer to watch the claim", func() bool {
		return strings.Contains(p.Logs(), `"msg":"another producer claims the stream: watching whether it renews its claim before taking it over","holder":"other"`)
	})
	if err := p.Stop(); err != nil {
		t.Errorf("SIGTERM during start-up: %v, want exit 0\n%s", err, p.Logs())
	}
	if logs := p.Logs(); !strings.Contains(logs, `"msg":"stopped while starting"`) || strings.Contains(logs, "cometstream: ") || strings.Contains(logs, `"msg":"producing"`) {
		t.Errorf("want a clean stop during start-up, before producing, and no error:\n%s", logs)
	}
	if e, err := kv.Get(ctx, event.WriterKey); err != nil || e.Revision() != rev {
		t.Errorf("the claim of the producer being watched was touched: %v (revision %d, was %d)", err, e.Revision(), rev)
	}
}

// TestTakenHTTPListenIsConfiguration: a taken http.listen (produce) or
// --http (sinks) exits 2, naming the setting to change.
func TestTakenHTTPListenIsConfiguration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	w := newStack(t, simulator.Config{Seed: 3, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 10}}})
	setHTTPListen(t, w.config, taken)
	if status, out := runBin(t, w.env, "produce", "--config", w.config); status != 2 || !strings.Contains(out, "cometstream: http.listen: ") {
		t.Errorf("produce with a taken http.listen: exit %d, want 2 naming http.listen:\n%s", status, out)
	}
	if status, out := runBin(t, nil, "sink", "sqlite", "--nats", w.url, "--db", filepath.Join(w.dir, "s.db"), "--http", taken); status != 2 || !strings.Contains(out, "cometstream: --http: ") {
		t.Errorf("sink with a taken --http: exit %d, want 2 naming --http:\n%s", status, out)
	}
}
