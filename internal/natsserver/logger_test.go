package natsserver_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/testenv"
)

// records parses the JSON log lines written so far.
func records(t *testing.T, logs *testenv.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// TestStartIsQuiet: the banner and the restore notices of a starting
// server are debug lines; what it says once up is info again.
func TestStartIsQuiet(t *testing.T) {
	var buf testenv.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	debug := 0
	for _, rec := range records(t, &buf) {
		if rec["level"] != "DEBUG" {
			t.Errorf("a starting server logged at %v: %v", rec["level"], rec["msg"])
		}
		if rec["component"] != "nats-server" {
			t.Errorf("a server line without its component: %v", rec)
		}
		debug++
	}
	if debug < 10 {
		t.Errorf("only %d debug lines from a starting server: is its banner logged at all?", debug)
	}
	s.Shutdown()
	s.WaitForShutdown()
	recs := records(t, &buf)
	if last := recs[len(recs)-1]; last["level"] != "INFO" {
		t.Errorf("a running server's notice %q at %v, want INFO", last["msg"], last["level"])
	}
}
