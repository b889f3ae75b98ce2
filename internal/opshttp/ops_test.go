package opshttp

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func start(t *testing.T, c Config) string {
	t.Helper()
	c.Addr = "127.0.0.1:0"
	s, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return "http://" + s.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPprof: the profiles are served only when asked for; the other paths
// are served either way.
func TestPprof(t *testing.T) {
	paths := []string{PprofPath, PprofPath + "heap", PprofPath + "goroutine?debug=1", PprofPath + "symbol"}
	for _, on := range []bool{false, true} {
		base := start(t, Config{Pprof: on})
		for _, p := range paths {
			status, body := get(t, base+p)
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if status != want {
				t.Errorf("pprof %v: GET %s answered %d, want %d: %.80s", on, p, status, want, body)
			}
		}
		if on {
			if _, body := get(t, base+PprofPath); !strings.Contains(body, "goroutine") {
				t.Errorf("the profile index lists no goroutine profile: %.200s", body)
			}
			// The command line may hold secrets (--password): never served.
			if status, _ := get(t, base+PprofPath+"cmdline"); status != http.StatusNotFound {
				t.Errorf("GET %scmdline answered %d, want 404", PprofPath, status)
			}
		}
		if status, _ := get(t, base+"/metrics"); status != http.StatusOK {
			t.Errorf("pprof %v: /metrics answered %d", on, status)
		}
	}
}

// TestProbes: /healthz answers while the process serves, /readyz follows
// the ready function.
func TestProbes(t *testing.T) {
	var ready atomic.Bool
	base := start(t, Config{Ready: ready.Load})
	if status, body := get(t, base+HealthPath); status != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", status, body)
	}
	if status, _ := get(t, base+ReadyPath); status != http.StatusServiceUnavailable {
		t.Errorf("readyz before ready: %d, want 503", status)
	}
	ready.Store(true)
	if status, _ := get(t, base+ReadyPath); status != http.StatusOK {
		t.Errorf("readyz when ready: %d, want 200", status)
	}
}

func TestStartRefusesTakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if s, err := Start(Config{Addr: ln.Addr().String()}); err == nil {
		s.Close(context.Background())
		t.Fatalf("Start listened on %s, which is taken", ln.Addr())
	}
}
