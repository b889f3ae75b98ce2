package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/postgres"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/opshttp"
)

// sinkUsage is what `cometstream sink --help` prints.
const sinkUsage = `usage: cometstream sink sqlite|postgres|webhook [flags]

  sqlite    materialize events into a SQLite file (--db FILE)
  postgres  materialize events into PostgreSQL (--dsn DSN)
  webhook   deliver events to HTTP endpoints (--config FILE); also
            sink webhook replay|enable|reset

Run "cometstream sink <kind> --help" for a kind's flags.`

func runSink(ctx context.Context, args []string) error {
	return subcommands{
		usage: sinkUsage, need: "sink needs a kind: sqlite, postgres or webhook",
		unknown: "unknown sink %q: sqlite, postgres or webhook",
		run:     map[string]func(context.Context, []string) error{"sqlite": runSinkSQLite, "postgres": runSinkPostgres, "webhook": runSinkWebhook},
	}.dispatch(ctx, args)
}

// sinkFlags are the flags every materializing sink takes.
type sinkFlags struct {
	subscriberFlags
	reports   string
	durable   string
	fromStart bool
	stream    string
	prefix    string
	http      string
	pprof     bool // Go's profiles on the --http endpoint
	batch     int  // events per transaction; 0: the library's default
}

func (f *sinkFlags) register(fs *flag.FlagSet) {
	f.subscriberFlags.register(fs)
	fs.StringVar(&f.reports, "reports", "", "comma-separated reports to materialize (default: all)")
	fs.StringVar(&f.durable, "durable", "", "JetStream consumer name (default: derived from the sink kind and target)")
	fs.BoolVar(&f.fromStart, "from-start", false, "rebuild the selected reports from the snapshot")
	fs.StringVar(&f.stream, "stream", config.DefaultStream, "stream name")
	fs.StringVar(&f.prefix, "prefix", config.DefaultSubjectPrefix, "subject prefix")
	fs.StringVar(&f.http, "http", "", "address of /metrics, /healthz and /readyz (default: none)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on --http")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var durableRE = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// defaultDurable derives a consumer name from the sink kind, a readable
// label of its target, and a hash of the whole target (which, for a DSN, may
// hold a password: only its hash is used), so two targets with the same
// label do not share a consumer.
func defaultDurable(kind, label, target string) string {
	sum := sha256.Sum256([]byte(target))
	base := durableRE.ReplaceAllString(label, "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return "sink_" + kind + "_" + base + "_" + hex.EncodeToString(sum[:4])
}

// materialize runs a store's sink until ctx ends.
func materialize(ctx context.Context, f *sinkFlags, kind, label, target string, store consumer.Store, log *slog.Logger, onApplied func([]*consumer.Message)) error {
	if f.pprof && f.http == "" {
		return usagef("--pprof serves the profiles on the --http endpoint: give --http too")
	}
	nc, js, err := f.connect("cometstream sink "+kind, log)
	if err != nil {
		return err
	}
	defer natsconn.Shutdown(nc, 5*time.Second)
	durable := f.durable
	if durable == "" {
		durable = defaultDurable(kind, label, target)
	}
	reg := opshttp.NewRegistry()
	// Set by Materialize's goroutine, read by /readyz: bootstrapped, and
	// not failing batch after batch.
	var ready, failing atomic.Bool
	stopOps, err := serveOps(opshttp.Config{Addr: f.http, Registry: reg, Ready: func() bool { return ready.Load() && !failing.Load() && nc.IsConnected() }, Pprof: f.pprof, Logger: log}, "--http")
	if err != nil {
		return err
	}
	defer stopOps()
	warnUnknownReports(ctx, js, f.prefix, splitList(f.reports), log)
	log.Info("sink starting", "kind", kind, "durable", durable)
	err = consumer.Materialize(ctx, consumer.MaterializeConfig{
		JetStream: js, Stream: f.stream, Prefix: f.prefix, Durable: durable,
		Reports: splitList(f.reports), FromStart: f.fromStart, Store: store, Logger: log, BatchSize: f.batch,
		Registerer: reg, OnReady: func() { ready.Store(true) }, OnBootstrap: bootstrapLine(),
		OnApplied: func(msgs []*consumer.Message) {
			failing.Store(false)
			if onApplied != nil {
				onApplied(msgs)
			}
		},
		OnFailing: func(_ error, failures int) { failing.Store(failures >= consumer.FailingAfter) },
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	log.Info("sink stopped")
	return nil
}

// bootstrapLine shows a long bootstrap's rows, rate and time left on a
// terminal, once it has run for a second.
func bootstrapLine() func(consumer.BootstrapProgress) {
	if !isTerminal(os.Stderr) {
		return nil
	}
	var start, last time.Time
	shown := false
	return func(p consumer.BootstrapProgress) {
		now := time.Now()
		if p.Loaded == 0 && !p.Done {
			start, shown = now, false
		}
		elapsed := now.Sub(start)
		if elapsed < time.Second || !p.Done && now.Sub(last) < 250*time.Millisecond {
			return
		}
		if p.Done && !shown {
			return // it took a second only to commit
		}
		last, shown = now, true
		rate := float64(p.Loaded) / elapsed.Seconds()
		line := fmt.Sprintf("\r%s: %d/%d rows, %.0f rows/s", p.Report, p.Loaded, p.Total, rate)
		if p.Done {
			line += fmt.Sprintf(", done in %s", elapsed.Round(time.Second))
		} else if rate > 0 {
			line += fmt.Sprintf(", %s left", time.Duration(float64(p.Total-p.Loaded)/rate*float64(time.Second)).Round(time.Second))
		}
		fmt.Fprint(os.Stderr, line+"\x1b[K") // erase what a longer line left
		if p.Done {
			fmt.Fprintln(os.Stderr)
		}
	}
}

// check returns the logger the flags ask for (materialize checks the rest).
func (f *sinkFlags) check() (*slog.Logger, error) { return f.log.logger() }

func runSinkSQLite(ctx context.Context, args []string) error {
	var f sinkFlags
	db := sqliteFlag{help: "SQLite database file (required)"}
	log, err := parseDatabase("sink sqlite", &f, &db, args)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(*db.path)
	store, err := sqlite.Open(ctx, *db.path)
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	defer store.Close()
	return materialize(ctx, &f, "sqlite", filepath.Base(abs), abs, store, log, nil)
}

// PostgresBatch is the PostgreSQL sink's events per transaction.
const PostgresBatch = 5000

func runSinkPostgres(ctx context.Context, args []string) error {
	var f sinkFlags
	var pg postgresFlags
	log, err := parseDatabase("sink postgres", &f, &pg, args)
	if err != nil {
		return err
	}
	dsn, schema := *pg.dsn, *pg.schema
	store, err := postgres.Open(ctx, dsn, schema)
	if err != nil {
		return fmt.Errorf("--dsn: %w", err)
	}
	defer store.Close()
	// PostgreSQL pays per transaction more than per row: larger batches.
	f.batch = PostgresBatch
	// The durable name hashes the DSN (which may hold a password) with the schema.
	return materialize(ctx, &f, "postgres", schema, schema+"\x00"+dsn, store, log, nil)
}
