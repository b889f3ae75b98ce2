package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cometstream/cometstream/internal/simulator"
)

func runSimulate(ctx context.Context, args []string) error {
	fs := newFlags("simulate")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	seed := fs.Uint64("seed", 1, "seed of the generated data")
	persons := fs.Int("persons", 2000, "rows of the persons report")
	matches := fs.Int("matches", 500, "rows of the matches report")
	fees := fs.Int("fees", 300, "rows of the fees report")
	rateLimit := fs.Int("rate-limit", 10, "calls per second per user before 429 (0: unlimited)")
	latency := fs.Duration("latency", 0, "delay before every response")
	errorRate := fs.Float64("error-rate", 0, "share of requests answered with HTTP 500")
	truncateRate := fs.Float64("truncate-rate", 0, "share of responses cut in half")
	changes := fs.Float64("changes-per-second", 0, "live inserts, updates and deletes per second")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	for name, v := range map[string]int{"persons": *persons, "matches": *matches, "fees": *fees} {
		if v < 0 || v > 10_000_000 {
			return usagef("--%s: %d rows is out of range", name, v)
		}
	}
	for name, v := range map[string]float64{"error-rate": *errorRate, "truncate-rate": *truncateRate} {
		if v < 0 || v > 1 {
			return usagef("--%s: %v must be between 0 and 1", name, v)
		}
	}
	if *changes < 0 {
		return usagef("--changes-per-second: must not be negative")
	}
	reports := simulator.DefaultReports()
	reports[0].Rows, reports[1].Rows, reports[2].Rows = *persons, *matches, *fees
	sim, err := simulator.New(simulator.Config{
		Seed: *seed, Reports: reports, RateLimit: *rateLimit,
		Latency: *latency, ErrorRate: *errorRate, TruncateRate: *truncateRate,
	})
	if err != nil {
		return usagef("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usagef("--listen: %v", err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	printSimulatorReports(base, sim)
	log.Info("simulator serving", "base_url", base, "control", base+"/_sim/reports")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if *changes > 0 {
		go sim.Churn(ctx, *changes)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// printSimulatorReports prints what a user needs to point a producer at the
// simulator: the keys as environment variables and a configuration excerpt.
func printSimulatorReports(base string, sim *simulator.Simulator) {
	w := os.Stdout
	fmt.Fprintf(w, "COMET simulator at %s\n\n", base)
	for _, r := range sim.Reports() {
		fmt.Fprintf(w, "export COMET_%s_KEY=%s\n", strings.ToUpper(r.Name), r.APIKey)
	}
	fmt.Fprintf(w, "\nsources:\n  - name: sim\n    base_url: %s\n    reports:\n", base)
	for _, r := range sim.Reports() {
		fmt.Fprintf(w, "      - name: %s\n        api_key_env: COMET_%s_KEY\n        user: %s\n        key: [%s]\n        interval: 10s\n",
			r.Name, strings.ToUpper(r.Name), r.User, strings.Join(sim.KeyColumns(r.Name), ", "))
	}
	fmt.Fprintln(w)
}
