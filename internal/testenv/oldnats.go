package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	oldMu    sync.Mutex
	oldBuilt = map[string]string{}
)

// OldNATSServer returns the path of a nats-server binary of the given
// release (v2.11.9), built from the Go module proxy once and kept under the
// system's temporary directory. $COMETSTREAM_NATS_SERVER_<version with
// dots as underscores> names a prebuilt one. Without the module proxy the
// test is skipped, except under CI=true, where it fails.
func OldNATSServer(t testing.TB, version string) string {
	t.Helper()
	oldMu.Lock()
	defer oldMu.Unlock()
	if p, ok := oldBuilt[version]; ok {
		return p
	}
	env := "COMETSTREAM_NATS_SERVER_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.TrimPrefix(version, "v"))
	if p := os.Getenv(env); p != "" {
		oldBuilt[version] = p
		return p
	}
	dir := filepath.Join(os.TempDir(), "cometstream-nats-server-"+version)
	bin := filepath.Join(dir, "nats-server")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("build nats-server %s from the module proxy: %v\n%s", version, err, out)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	oldBuilt[version] = bin
	return bin
}

// StartNATSBinary runs a nats-server binary with JetStream on a free
// loopback port, stopped when the test ends, and returns its URL.
func StartNATSBinary(t testing.TB, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	var logs Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server %s did not listen: %v\n%s", bin, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CurrentNATSServer returns the path of a nats-server binary of the release
// this module requires (go.mod's), as OldNATSServer builds one: for a
// benchmark that keeps the server in a process of its own, as users run a
// sink or an external server.
func CurrentNATSServer(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2").Output()
	if err != nil {
		t.Fatalf("the nats-server module's version: go list: %v", err)
	}
	return OldNATSServer(t, strings.TrimSpace(string(out)))
}
