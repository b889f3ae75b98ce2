package main

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
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

// TestTail prints filtered events as JSON lines.
func TestTail(t *testing.T) {
	w := newStack(t, simulator.Config{Seed: 4, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 30}, {Name: "fees", Kind: "fees", Rows: 12},
	}})
	prod := w.produce(t)
	w.waitFirstPasses(t)
	tail := testenv.Start(t, "tail", nil, "tail", "--nats", w.url, "--from-start", "--color", "never", "--reports", "fees", "--ops", "created", "--log-level", "error")
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(tail.Logs(), "\n") < 12 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// A second tail, with another start, beside the first: each reader has
	// its own consumer on the server.
	news := testenv.Start(t, "tail-new", nil, "tail", "--nats", w.url, "--color", "never", "--reports", "fees", "--ops", "updated", "--log-level", "error")
	testenv.WaitFor(t, "the second tail to print an update", func() bool {
		w.sim.Update("fees", 1)
		time.Sleep(200 * time.Millisecond) // a change every 200ms until one is published
		return strings.Contains(news.Logs(), `"type":"comet.row.updated"`)
	})
	if err := news.Stop(); err != nil {
		t.Errorf("the second tail: %v\n%s", err, news.Tail(2000))
	}
	tail.Stop()
	prod.Stop()
	sc := bufio.NewScanner(strings.NewReader(tail.Logs()))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("line %d is not JSON: %q", n+1, sc.Text())
		}
		ev, err := event.Decode(sc.Bytes())
		if err != nil || ev.Type != event.TypeCreated || ev.Row.Report != "fees" {
			t.Fatalf("line %d: %v %+v", n+1, err, ev)
		}
		n++
	}
	if n != 12 {
		t.Errorf("%d lines, want the 12 fees created", n)
	}
}
