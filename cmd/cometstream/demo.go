package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/datadir"
	"github.com/cometstream/cometstream/internal/simulator"
)

func runDemo(ctx context.Context, args []string) error {
	fs := newFlags("demo")
	dir := fs.String("dir", "cometstream-demo", "directory for the NATS store and the SQLite file")
	persons := fs.Int("persons", 2000, "rows of the simulated persons report")
	changes := fs.Float64("changes-per-second", 2, "live changes the simulator makes")
	interval := fs.Duration("interval", 3*time.Second, "how often each report is polled")
	listen := fs.String("nats-listen", "127.0.0.1:4222", "address of the embedded NATS server (a free port if taken)")
	var shapes shapeFlags
	fs.Var(&shapes, "shape", "switch a simulated report to a shape of real deployments, REPORT:NAME[=VALUE], repeatable (see simulate --help)")
	lf := logFlags{}
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if lf.level == "info" {
		lf.level = "warn" // the demo prints what matters itself
	}
	if lf.format == "auto" {
		// Its warnings go to a person beside its readable output, terminal
		// or not (a file, | tee): text, not JSON.
		lf.format = "text"
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return usagef("--dir: %v", err)
	}
	// One demo per directory: the next lines remove what a running one uses.
	lock, err := datadir.Acquire(*dir, "cometstream demo --dir "+*dir)
	if err != nil {
		if errors.Is(err, datadir.ErrLocked) {
			return usagef("--dir %v", err)
		}
		return err
	}
	defer lock.Release()
	// Every demo starts over: its simulator invents new data each time, and
	// last run's snapshot would only make the first pass look like mass
	// deletes.
	dbPath := filepath.Join(*dir, "cometstream.db")
	for _, p := range []string{filepath.Join(*dir, "data"), dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("reset the demo directory: %w", err)
		}
	}

	// The COMET stand-in, changing its data as it goes.
	reports := simulator.DefaultReports()
	reports[0].Rows = *persons
	sim, err := simulator.New(simulator.Config{Seed: uint64(time.Now().UnixNano()), Reports: reports, RateLimit: 10})
	if err != nil {
		return err
	}
	if err := shapes.apply(sim); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()

	natsListen := *listen
	if l, err := net.Listen("tcp", natsListen); err != nil {
		natsListen = "127.0.0.1:0"
	} else {
		l.Close()
	}
	// The producer runs as `cometstream produce` would with this file: the
	// same parsing, defaults, key files and one limiter per COMET user.
	cfgPath, err := writeDemoConfig(*dir, base, natsListen, *interval, sim)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cfg.HTTP.Listen = "" // the demo's one addition: no operations endpoint
	preports, err := producerReports(cfg, log)
	if err != nil {
		return err
	}

	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()

	// Stages stop in order, each once the one before has returned: the sink
	// (on Ctrl-C, or when any stage fails), then the producer, which stops
	// the embedded server, then the COMET stand-in. Nothing is cut off
	// mid-way, and every goroutine is joined before runDemo returns.
	g, gctx := errgroup.WithContext(ctx)
	prodCtx, stopProducer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProducer()
	simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSim()
	hs := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("the COMET simulator: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-simCtx.Done()
		return hs.Close()
	})
	g.Go(func() error {
		sim.Churn(simCtx, *changes)
		return nil
	})
	ready := make(chan string, 1)
	onReady := func(url string) {
		abs, _ := filepath.Abs(dbPath)
		absCfg, _ := filepath.Abs(cfgPath)
		fmt.Printf("cometstream demo\n  COMET simulator   %s (reports: persons, matches, fees; %.0f changes a second)\n  configuration     %s\n  NATS (embedded)   %s  (try: nats --server %s stream info COMET)\n  SQLite            %s  (try: sqlite3 %s 'select count(*) from persons')\nPress Ctrl-C to stop.\n\n",
			base, *changes, absCfg, url, url, abs, abs)
		select {
		case ready <- url:
		default:
		}
	}
	g.Go(func() error {
		defer stopSim()
		return produce(prodCtx, cfg, "", preports, nil, log, produceOptions{onReady: onReady, command: "cometstream demo --dir " + *dir})
	})
	g.Go(func() error {
		defer stopProducer()
		select {
		case url := <-ready:
			return demoSink(gctx, url, store, log)
		case <-gctx.Done():
			return nil
		}
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// writeDemoConfig writes the configuration file of the demo's producer, and
// the simulated reports' API keys as key files beside it.
func writeDemoConfig(dir, base, natsListen string, interval time.Duration, sim *simulator.Simulator) (string, error) {
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return "", fmt.Errorf("demo key files: %w", err)
	}
	var reps []map[string]any
	for _, r := range sim.Reports() {
		keyFile := filepath.Join(keys, r.Name)
		if err := os.WriteFile(keyFile, []byte(r.APIKey+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("demo key files: %w", err)
		}
		rep := map[string]any{
			"name": r.Name, "api_key_file": keyFile, "user": r.User, "key": sim.KeyColumns(r.Name),
			"interval": interval.String(), "page_size": 1000, "max_delete_fraction": 0.5,
		}
		if r.Shapes.TemplatePath {
			rep["path"] = fmt.Sprintf("%s%d/{page}/{size}/", simulator.ReportPath, r.TemplateID)
		}
		if len(r.Shapes.Params) > 0 {
			rep["params"] = r.Shapes.Params
		}
		reps = append(reps, rep)
	}
	doc := map[string]any{
		"data_dir": filepath.Join(dir, "data"),
		"nats":     map[string]any{"listen": natsListen},
		"sources":  []map[string]any{{"name": "simulator", "base_url": base, "rate_limit": 10, "reports": reps}},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cometstream.yaml")
	head := "# Written by cometstream demo for its simulated COMET; rewritten by every run.\n"
	if err := os.WriteFile(path, append([]byte(head), b...), 0o600); err != nil {
		return "", fmt.Errorf("demo configuration: %w", err)
	}
	return path, nil
}

// demoSink materializes into SQLite and prints the changes as they land.
func demoSink(ctx context.Context, url string, store *sqlite.Store, log *slog.Logger) error {
	f := &sinkFlags{stream: config.DefaultStream, prefix: config.DefaultSubjectPrefix}
	f.nats.URL = url
	loaded := map[string]bool{}
	colour := isTerminal(os.Stdout)
	return materialize(ctx, f, "sqlite", "demo", "demo", store, log, func(msgs []*consumer.Message) {
		for _, m := range msgs {
			switch {
			case m.Synced != nil && !loaded[m.Synced.Report]:
				loaded[m.Synced.Report] = true
				fmt.Printf("%s: %d rows loaded into SQLite; watching for changes\n", m.Synced.Report, m.Synced.Rows)
			case m.Row != nil && loaded[m.Row.Report]:
				printHuman(os.Stdout, m.Event, colour)
			case m.Held != nil, m.Unavailable != nil:
				printHuman(os.Stdout, m.Event, colour)
			}
		}
	})
}
