package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
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
	events := fs.Int("events", 0, "rows of the events report, match events keyed by content (0: not served)")
	var shapes shapeFlags
	fs.Var(&shapes, "shape", "switch a report to a shape of real deployments, REPORT:NAME[=VALUE], repeatable (names: "+
		strings.Join(simulator.ShapeNames(), ", ")+")")
	rateLimit := fs.Int("rate-limit", 10, "calls per second per user before 429 (0: unlimited)")
	latency := fs.Duration("latency", 0, "delay before every response")
	errorRate := fs.Float64("error-rate", 0, "share of requests answered with HTTP 500")
	truncateRate := fs.Float64("truncate-rate", 0, "share of responses cut in half")
	changes := fs.Float64("changes-per-second", 0, "live inserts, updates and deletes per second")
	var lf logFlags
	lf.register(fs)
	log, err := lf.parse(fs, args)
	if err != nil {
		return err
	}
	for name, v := range map[string]int{"persons": *persons, "matches": *matches, "fees": *fees, "events": *events} {
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
	if *events > 0 {
		reports = append(reports, simulator.ReportSpec{Name: "events", Kind: "events", Rows: *events, User: "federation"})
	}
	sim, err := simulator.New(simulator.Config{
		Seed: *seed, Reports: reports, RateLimit: *rateLimit,
		Latency: *latency, ErrorRate: *errorRate, TruncateRate: *truncateRate,
	})
	if err != nil {
		return usagef("%v", err)
	}
	if err := shapes.apply(sim); err != nil {
		return err
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

// shapeFlags are the values of --shape, REPORT:NAME[=VALUE], in order.
type shapeFlags []string

func (f *shapeFlags) String() string { return strings.Join(*f, " ") }

func (f *shapeFlags) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// apply switches the simulator's reports to the shapes, one value after the
// other, refusing a value it cannot apply with a usage error that names it.
func (f shapeFlags) apply(sim *simulator.Simulator) error {
	for _, v := range f {
		report, shape, ok := strings.Cut(v, ":")
		name, value, _ := strings.Cut(shape, "=")
		if !ok || report == "" || name == "" {
			return usagef("--shape %q: want REPORT:NAME[=VALUE], e.g. persons:page-cap=500", v)
		}
		sh, err := sim.Shapes(report)
		if err != nil {
			var served []string
			for _, r := range sim.Reports() {
				served = append(served, r.Name)
			}
			return usagef("--shape %q: no report %q is served (served: %s)", v, report, strings.Join(served, ", "))
		}
		if err := simulator.ParseShape(&sh, name, value); err != nil {
			return usagef("--shape %q: %v", v, err)
		}
		if err := sim.SetShapes(report, sh); err != nil {
			return usagef("--shape %q: %v", v, err)
		}
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
		var key []string
		for _, k := range sim.KeyColumns(r.Name) {
			key = append(key, yamlScalar(k))
		}
		fmt.Fprintf(w, "      - name: %s\n", r.Name)
		if shapes := r.Shapes.String(); shapes != "" {
			fmt.Fprintf(w, "        # shapes: %s\n", shapes)
		}
		fmt.Fprintf(w, "        api_key_env: COMET_%s_KEY\n        user: %s\n        key: [%s]\n        interval: 10s\n",
			strings.ToUpper(r.Name), r.User, strings.Join(key, ", "))
		if r.Shapes.TemplatePath {
			fmt.Fprintf(w, "        path: %s%d/{page}/{size}/\n", simulator.ReportPath, r.TemplateID)
		}
		if len(r.Shapes.Params) > 0 {
			var params []string
			for _, k := range slices.Sorted(maps.Keys(r.Shapes.Params)) {
				params = append(params, yamlScalar(k)+": "+strconv.Quote(r.Shapes.Params[k]))
			}
			fmt.Fprintf(w, "        params: {%s}\n", strings.Join(params, ", "))
		}
	}
	fmt.Fprintln(w)
}

// yamlScalar returns s as a YAML flow scalar: as it is when it is a plain
// identifier, double-quoted otherwise (so that the content key "*" is not
// read as an alias).
func yamlScalar(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
		}
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}
