package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/internal/config"
)

// errHelp ends a command that printed its help.
var errHelp = errors.New("help requested")

// usageError marks bad usage or invalid configuration: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u) || errors.Is(err, config.ErrInvalid) || errors.Is(err, webhook.ErrInvalidConfig)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"produce", "poll COMET reports and publish change events", runProduce},
		{"inspect", "show a report's columns and key candidates", runInspect},
		{"sink", "sink sqlite|postgres (materialize) or sink webhook [replay] (deliver)", runSink},
		{"tail", "print events as JSON lines (readable and coloured on a terminal)", runTail},
		{"status", "print the state of every report", runStatus},
		{"plan", "check that each report's interval fits its COMET user's budget of calls", runPlan},
		{"allow-deletes", "release a report's held deletes once", runAllowDeletes},
		{"key", "a row's key token from its key values (for nats kv get), or --decode one", runKey},
		{"simulate", "serve a COMET API simulator", runSimulate},
		{"demo", "simulator, embedded NATS, producer and SQLite sink in one process", runDemo},
		{"verify", "verify sqlite|postgres: compare a sink's tables with the snapshot, row by row", runVerify},
		{"health", "probe an operations endpoint: exit 0 when its /healthz (or /readyz) answers 200", runHealth},
		{"version", "print the version and the commit of this build", runVersion},
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		printUsage(os.Stderr)
		return usagef("no command given")
	}
	if isHelp(args[0]) {
		printUsage(os.Stdout) // asked for: the command's result
		return errHelp
	}
	if args[0] == "--version" {
		return runVersion(ctx, args[1:])
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	printUsage(os.Stderr)
	return usagef("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: cometstream <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"cometstream <command> --help\" for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("cometstream "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors. Help
// asked for is the command's result, on standard output; a flag error's
// usage goes to standard error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// main says "cometstream: " already.
		return usagef("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "cometstream "), fs.Arg(0))
	}
	return nil
}

func parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) && a != "help" {
			fs.SetOutput(os.Stdout)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return &usageError{err: err}
	}
	return nil
}

// parseValues is parseFlags for a command that takes values: flags may
// come before, between or after them, up to "--", after which everything
// is a value (a value starting with "-" goes there). It returns the
// values in order.
func parseValues(fs *flag.FlagSet, args []string) ([]string, error) {
	var values []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); len(rest) == 0 || (used > 0 && args[used-1] == "--") {
			return append(values, rest...), nil
		}
		values, args = append(values, rest[0]), rest[1:]
	}
}

// isHelp reports whether a command's first argument asks for its help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// logFlags adds --log-level and --log-format.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "auto", "text, json, or auto (text on a terminal)")
}

// parse parses args (see parseFlags) and returns the logger the log flags
// ask for.
func (l *logFlags) parse(fs *flag.FlagSet, args []string) (*slog.Logger, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return l.logger()
}

// logger builds the one slog handler of the process.
func (l *logFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usagef("--log-level: %q is not debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(l.format)
	if format == "auto" {
		format = "json"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		opts.ReplaceAttr = durationSeconds
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, usagef("--log-format: %q is not text, json or auto", l.format)
}

// durationSeconds renders a time.Duration as seconds (a float), for the
// JSON handler: it would write nanoseconds, which log pipelines take for a
// plain number. The text handler keeps Go's form (1.5s).
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// printJSON writes v to w as what --json prints: indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
