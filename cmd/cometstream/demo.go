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
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/datadir"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/producer"
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
	hs := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	go sim.Churn(ctx, *changes)

	natsListen := *listen
	if l, err := net.Listen("tcp", natsListen); err != nil {
		natsListen = "127.0.0.1:0"
	} else {
		l.Close()
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(*dir, "data")
	cfg.NATS.Listen = natsListen
	cfg.HTTP.Listen = ""
	limiters := map[string]*comet.Limiter{} // one per COMET user, as in production
	var preports []producer.ReportConfig
	for _, r := range sim.Reports() {
		if limiters[r.User] == nil {
			limiters[r.User] = comet.NewLimiter(10)
		}
		cc := comet.Config{BaseURL: base, APIKey: r.APIKey, Limiter: limiters[r.User], Params: r.Shapes.Params}
		if r.Shapes.TemplatePath {
			cc.Path = fmt.Sprintf("%s%d/{page}/{size}/", simulator.ReportPath, r.TemplateID)
		}
		preports = append(preports, producer.ReportConfig{
			Name: r.Name, Key: sim.KeyColumns(r.Name), Interval: *interval, PageSize: 1000, MaxDeleteFraction: 0.5,
			Comet: cc,
		})
	}

	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()

	// The sink stops first, then the producer, which stops the embedded
	// server last: nothing is cut off mid-way.
	sinkCtx, stopSink := context.WithCancel(ctx)
	defer stopSink()
	prodCtx, stopProducer := context.WithCancel(context.Background())
	defer stopProducer()
	sinkDone := make(chan error, 1)
	prodDone := make(chan error, 1)
	var sinkStarted sync.Once
	var sinkRunning atomic.Bool
	onReady := func(url string) {
		abs, _ := filepath.Abs(dbPath)
		fmt.Printf("cometstream demo\n  COMET simulator   %s (reports: persons, matches, fees; %.0f changes a second)\n  NATS (embedded)   %s  (try: nats --server %s stream view COMET)\n  SQLite            %s  (try: sqlite3 %s 'select count(*) from persons')\nPress Ctrl-C to stop.\n\n",
			base, *changes, url, url, abs, abs)
		sinkStarted.Do(func() {
			sinkRunning.Store(true)
			go func() { sinkDone <- demoSink(sinkCtx, url, store, log) }()
		})
	}
	go func() {
		prodDone <- produce(prodCtx, cfg, "", preports, nil, log, produceOptions{onReady: onReady, command: "cometstream demo --dir " + *dir})
	}()

	var sinkErr, prodErr error
	sinkFinished, prodFinished := false, false
	select {
	case <-ctx.Done():
	case sinkErr = <-sinkDone:
		sinkFinished = true
	case prodErr = <-prodDone:
		prodFinished = true
	}
	stopSink()
	if sinkRunning.Load() && !sinkFinished {
		select {
		case sinkErr = <-sinkDone:
		case <-time.After(10 * time.Second):
			log.Warn("demo: the sink did not stop within 10s")
		}
	}
	stopProducer()
	if !prodFinished {
		prodErr = <-prodDone
	}
	if err := errors.Join(sinkErr, prodErr); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
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
