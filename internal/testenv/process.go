package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
)

// Proc is a cometstream process started by a test.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	logs *Buffer
	done chan error
}

// Start runs the cometstream binary with args; the process is killed when
// the test ends if it is still running.
func Start(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, logs: &Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(Binary(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	p.wait()
}

func (p *Proc) wait() error {
	select {
	case err := <-p.done:
		p.done <- err // keep it for the next caller
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not exit", p.Name)
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends a signal.
func (p *Proc) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and returns how the process exited.
func (p *Proc) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait()
}

// Logs returns everything the process wrote.
func (p *Proc) Logs() string { return p.logs.String() }

// Tail returns the end of the logs.
func (p *Proc) Tail(n int) string {
	s := p.Logs()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// ProducerConfig writes a producer configuration polling every report of
// the simulator each second, and returns its path and the environment
// holding the API keys.
func ProducerConfig(t testing.TB, dir, natsURL, base string, sim *simulator.Simulator, extra string) (string, []string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s\nnats:\n  url: %s\n  duplicate_window: 1s\nhttp:\n  listen: \"\"\nsources:\n  - name: sim\n    base_url: %s\n    rate_limit: 200\n    reports:\n",
		filepath.Join(dir, "data"), natsURL, base)
	var env []string
	for _, r := range sim.Reports() {
		v := "KEY_" + strings.ToUpper(r.Name)
		env = append(env, v+"="+r.APIKey)
		fmt.Fprintf(&b, "      - name: %s\n        api_key_env: %s\n        user: %s\n        key: [%s]\n        interval: 1s\n        page_size: 20\n        max_delete_fraction: 0.9\n%s",
			r.Name, v, r.User, yamlList(sim.KeyColumns(r.Name)), extra)
	}
	path := filepath.Join(dir, "cometstream.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, env
}

// yamlList renders key columns as YAML flow items, quoting all of them (a
// bare * would be an alias).
func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
