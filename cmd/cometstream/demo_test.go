package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/testenv"
)

// TestDemo runs the README's first command and checks it loads every
// report into SQLite, prints changes, and stops cleanly on Ctrl-C.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	// Twice in the same directory: the second run starts over.
	for run := range 2 {
		demoOnce(t, dir, run)
	}
}

func demoOnce(t *testing.T, dir string, run int) {
	p := testenv.Start(t, "demo", nil, "demo", "--dir", dir, "--nats-listen", "127.0.0.1:0", "--persons", "300", "--changes-per-second", "20", "--interval", "1s")
	deadline := time.Now().Add(60 * time.Second)
	loaded := regexp.MustCompile(`(?m)^(persons|matches|fees): \d+ rows loaded`)
	for !(len(loaded.FindAllString(p.Logs(), -1)) == 3 && strings.Count(p.Logs(), "\n") > 20) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not load and stream:\n%s", p.Tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Signal(syscall.SIGINT)
	if err := p.Stop(); err != nil {
		t.Fatalf("demo exit: %v\n%s", err, p.Tail(2000))
	}
	out := p.Logs()
	for _, want := range []string{"cometstream.db", "nats://127.0.0.1:", " updated ", " created "} {
		if !strings.Contains(out, want) {
			t.Errorf("run %d: demo output lacks %q:\n%s", run, want, out)
		}
	}
	if strings.Contains(out, "DELETES HELD") {
		t.Errorf("run %d: the demo held deletes:\n%s", run, out)
	}
	if _, err := filepath.Abs(filepath.Join(dir, "cometstream.db")); err != nil {
		t.Fatal(err)
	}
}

// TestDemoWarningsAreText: the demo's warnings (here: cells that do not
// convert) are text beside its readable output, never JSON, terminal or
// not.
func TestDemoWarningsAreText(t *testing.T) {
	p := testenv.Start(t, "demo", nil, "demo", "--dir", t.TempDir(), "--nats-listen", "127.0.0.1:0", "--persons", "50", "--interval", "1s", "--shape", "persons:bad-cells=2")
	testenv.WaitFor(t, "the demo to warn about the bad cells", func() bool {
		return strings.Contains(p.Logs(), `level=WARN msg="cells that do not convert`)
	})
	if err := p.Stop(); err != nil {
		t.Errorf("demo: %v\n%s", err, p.Tail(2000))
	}
	for _, line := range strings.Split(p.Logs(), "\n") {
		if strings.HasPrefix(line, "{") {
			t.Errorf("a JSON line in the demo's output: %s", line)
		}
	}
}
