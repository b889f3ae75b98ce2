package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/testenv"
)

// procStat reads a process's CPU seconds (user and system).
func procCPU(t testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procPeakRSS reads VmHWM in MB.
func procPeakRSS(t testing.TB, pid int) float64 { return procStatus(t, pid, "VmHWM:") }

// procStatus reads a memory figure of /proc/PID/status in MB.
func procStatus(t testing.TB, pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkSteadyPass1M measures a steady-state pass over a million rows
// with 0.1% of them changed: the producer and the simulator are separate
// processes, NATS runs in the benchmark. It reports the producer's CPU
// seconds and peak RSS during that pass, the pass's wall time, and, as the
// baseline measured in the same run, the time a plain HTTP client takes to
// fetch the same pages with the same concurrency (no decoding).
//
//	go test -run XXX -bench SteadyPass1M -benchtime 1x -timeout 20m ./cmd/cometstream
func BenchmarkSteadyPass1M(b *testing.B) {
	const rows = 1_000_000
	bin := testenv.Binary(b)
	dir := b.TempDir()
	simAddr := freeAddr(b)
	sim := exec.Command(bin, "simulate", "--listen", simAddr, "--persons", strconv.Itoa(rows), "--matches", "0", "--fees", "0", "--rate-limit", "0")
	out, _ := sim.StdoutPipe()
	sim.Stderr = io.Discard
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	key := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() && key == "" {
		if v, ok := strings.CutPrefix(sc.Text(), "export COMET_PERSONS_KEY="); ok {
			key = v
		}
	}
	go io.Copy(io.Discard, out)
	base := "http://" + simAddr

	srv := testenv.StartNATS(b, filepath.Join(dir, "nats"))
	_, js := testenv.Connect(b, srv.ClientURL())
	config := filepath.Join(dir, "c.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`data_dir: %s
nats: {url: %q}
http: {listen: ""}
sources:
  - name: sim
    base_url: %s
    rate_limit: 1000
    reports:
      - {name: persons, api_key_env: KEY, key: [personId], interval: 15s, page_size: 1000}
`, dir, srv.ClientURL(), base)), 0o600)
	prod := exec.Command(bin, "produce", "--config", config, "--log-level", "warn")
	prod.Env = append(os.Environ(), "KEY="+key)
	prod.Stderr = os.Stderr
	if err := prod.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prod.Process.Signal(syscall.SIGTERM); prod.Wait() })

	first, seq := waitSynced(b, js, "persons", 0, 10*time.Minute)
	if first.Created != rows {
		b.Fatalf("first pass %+v", first)
	}
	b.ResetTimer()
	for b.Loop() {
		if resp, err := http.Post(base+"/_sim/reports/persons/update?n=1000", "", nil); err != nil {
			b.Fatal(err)
		} else {
			resp.Body.Close()
		}
		// Reset the peak RSS so it covers the steady state only.
		b.ReportMetric(procStatus(b, prod.Process.Pid, "VmRSS:"), "rss_before_MB")
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", prod.Process.Pid), []byte("5"), 0)
		cpu0 := procCPU(b, prod.Process.Pid)
		s, next := waitSynced(b, js, "persons", seq, 5*time.Minute)
		seq = next
		cpu := procCPU(b, prod.Process.Pid) - cpu0
		if s.Updated < 500 || s.Created != 0 || !s.Consistent {
			b.Fatalf("steady pass %+v", s)
		}
		httpTime := fetchAll(b, base, key, rows/1000)
		pass := s.Finished.Sub(s.Started).Seconds()
		b.ReportMetric(cpu, "cpu_s")
		b.ReportMetric(procPeakRSS(b, prod.Process.Pid), "peak_rss_MB")
		b.ReportMetric(pass, "pass_s")
		b.ReportMetric(httpTime.Seconds(), "http_s")
		b.ReportMetric(pass-httpTime.Seconds(), "beyond_http_s")
	}
}

// fetchAll is the baseline: fetch every page with 8 in flight and read the
// bodies, nothing else.
func fetchAll(b *testing.B, base, key string, pages int) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for p := range pages {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := http.Get(fmt.Sprintf("%s/data-backend/api/public/areports/run/%d/1000/?API_KEY=%s", base, p, key))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	return time.Since(start)
}
