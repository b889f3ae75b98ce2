package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cometstream/cometstream/consumer/postgres"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/verify"
)

var (
	_ verify.Database = (*sqlite.Store)(nil)
	_ verify.Database = (*postgres.Store)(nil)
)

// errNotEqual ends a verification that found a difference, or could not
// compare a report: exit status 1, after the report was printed.
var errNotEqual = errors.New("reports differ or could not be compared")

func runVerify(ctx context.Context, args []string) error {
	return subcommands{
		usage: verifyUsage, need: "verify needs a kind: sqlite or postgres",
		unknown: "unknown sink %q to verify: sqlite or postgres",
		run:     map[string]func(context.Context, []string) error{"sqlite": runVerifySQLite, "postgres": runVerifyPostgres},
	}.dispatch(ctx, args)
}

// verifyUsage is what `cometstream verify --help` prints.
const verifyUsage = `usage: cometstream verify sqlite|postgres [flags]

  sqlite    compare the tables of a SQLite sink (--db FILE) with the snapshot buckets
  postgres  compare the tables of a PostgreSQL sink (--dsn DSN) with the snapshot buckets

Prints the differences; exits 1 on any. Run "cometstream verify <kind> --help" for a kind's flags.`

// verifyFlags are the flags of both verify commands.
type verifyFlags struct {
	subscriberFlags
	reports  string
	stream   string
	prefix   string
	timeout  time.Duration
	maxDiffs int
}

func (f *verifyFlags) register(fs *flag.FlagSet) {
	f.subscriberFlags.register(fs)
	fs.StringVar(&f.reports, "reports", "", "comma-separated reports to verify (default: all the database holds)")
	fs.StringVar(&f.stream, "stream", config.DefaultStream, "stream name")
	fs.StringVar(&f.prefix, "prefix", config.DefaultSubjectPrefix, "subject prefix")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the sink to catch up with the stream, per report")
	fs.IntVar(&f.maxDiffs, "max-diffs", 100, "differing rows printed per report (0: all)")
}

// check validates the flags once parsed and returns the logger they ask
// for.
func (f *verifyFlags) check() (*slog.Logger, error) {
	if f.timeout < 0 {
		return nil, usagef("--timeout: %s is negative", f.timeout)
	}
	if f.maxDiffs < 0 {
		return nil, usagef("--max-diffs: %d is negative", f.maxDiffs)
	}
	for _, r := range splitList(f.reports) {
		if !event.NameRE.MatchString(r) {
			return nil, usagef("--reports: %q is not a report name (%s)", r, event.NameRE)
		}
	}
	return f.log.logger()
}

func runVerifySQLite(ctx context.Context, args []string) error {
	var f verifyFlags
	db := sqliteFlag{help: "SQLite database file of the sink (required)"}
	log, err := parseDatabase("verify sqlite", &f, &db, args)
	if err != nil {
		return err
	}
	store, err := sqlite.OpenReadOnly(ctx, *db.path)
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	defer store.Close()
	return verifyStore(ctx, &f, log, verify.Config{DB: store, TokenColumn: sqlite.KeyColumn})
}

func runVerifyPostgres(ctx context.Context, args []string) error {
	var f verifyFlags
	var pg postgresFlags
	log, err := parseDatabase("verify postgres", &f, &pg, args)
	if err != nil {
		return err
	}
	store, err := postgres.OpenReadOnly(ctx, *pg.dsn, *pg.schema)
	if err != nil {
		return fmt.Errorf("--dsn: %w", err)
	}
	defer store.Close()
	// PostgreSQL keeps every digit: numbers must match exactly.
	return verifyStore(ctx, &f, log, verify.Config{DB: store, TokenColumn: postgres.KeyColumn, ExactNumbers: true})
}

// verifyStore runs the verification and prints its report.
func verifyStore(ctx context.Context, f *verifyFlags, log *slog.Logger, cfg verify.Config) error {
	nc, js, err := f.connect("cometstream verify", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg.JetStream, cfg.Stream, cfg.Prefix = js, f.stream, f.prefix
	cfg.Reports, cfg.Timeout, cfg.Logger = splitList(f.reports), f.timeout, log
	results, err := verify.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bad := printVerify(os.Stdout, results, f.maxDiffs)
	if bad > 0 {
		return fmt.Errorf("verify: %d of %d %w", bad, len(results), errNotEqual)
	}
	return nil
}

// printVerify prints each report's differences and a summary line, and
// returns how many reports were not equal.
func printVerify(w io.Writer, results []verify.Result, maxDiffs int) int {
	bad := 0
	for _, r := range results {
		switch {
		case errors.Is(r.Err, verify.ErrBehind):
			fmt.Fprintf(w, "%s: sink behind: at %d, stream at %d\n", r.Report, r.Position, r.Stream)
		case r.Err != nil:
			fmt.Fprintf(w, "%s: not verified: %v\n", r.Report, r.Err)
		case len(r.Diffs) == 0:
			fmt.Fprintf(w, "%s: equal, %s compared at position %d\n", r.Report, rowCount(r.Rows), r.Position)
		default:
			for i, d := range r.Diffs {
				if maxDiffs > 0 && i == maxDiffs {
					fmt.Fprintf(w, "%s: … %d more differing rows\n", r.Report, len(r.Diffs)-maxDiffs)
					break
				}
				fmt.Fprintf(w, "%s: %s\n", r.Report, describe(d, r.Key))
			}
			differ := " rows differ"
			if len(r.Diffs) == 1 {
				differ = " row differs"
			}
			fmt.Fprintf(w, "%s: %d%s, %s compared at position %d\n", r.Report, len(r.Diffs), differ, rowCount(r.Rows), r.Position)
		}
		if !r.Equal() {
			bad++
		}
	}
	return bad
}

func rowCount(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

// describe renders one difference on one line.
func describe(d verify.Difference, key []string) string {
	row := d.Key
	if strings.Contains(d.Key, "=") || len(key) > 1 {
		// An encoded or composite token: the key values say more.
		parts := make([]string, len(key))
		for i, k := range key {
			parts[i] = k + "=" + showValue(d.KeyValues[k])
		}
		row += " (" + strings.Join(parts, ", ") + ")"
	}
	switch d.Kind {
	case verify.Missing:
		return "missing row " + row + ": in the snapshot, not in the database"
	case verify.Extra:
		return "extra row " + row + ": in the database, not in the snapshot"
	}
	s := "row " + row + " differs:"
	for i, c := range d.Columns {
		if i > 0 {
			s += ";"
		}
		s += fmt.Sprintf(" %s: database %s, snapshot %s", c.Column, showValue(c.Database), showValue(c.Snapshot))
	}
	return s
}

// showValue renders a value as JSON, long text shortened.
func showValue(v event.Value) string {
	const limit = 80
	if v.Kind == event.Text && len(v.Raw) > limit {
		n := limit
		for n > 0 && !utf8.RuneStart(v.Raw[n]) {
			n--
		}
		return string(event.AppendString(nil, v.Raw[:n])) + fmt.Sprintf("… (%d bytes)", len(v.Raw))
	}
	return string(v.AppendJSON(nil))
}
