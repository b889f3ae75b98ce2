package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
)

const keyUsage = `usage: cometstream key --report NAME [--config FILE] [--prefix P] VALUE...
       cometstream key --decode TOKEN [--report NAME] [--config FILE]

Prints the row key token of a row's key values (in the order of the report's key columns, as
text: NUMBER as received, DATE as YYYY-MM-DD, DATETIME as RFC 3339), with the subject and the
bucket key it appears under, for nats kv get and nats sub. --decode prints the values of a token
(or of a row subject). With --config, the report's key columns name the values and their number
is checked. Flags may follow the values; a value starting with "-" goes after "--".`

func runKey(_ context.Context, args []string) error {
	fs := newFlags("key")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", keyUsage)
		fs.PrintDefaults()
	}
	report := fs.String("report", "", "the report the key belongs to (required to encode)")
	decode := fs.String("decode", "", "print the key values of this token (or row subject) instead")
	path := fs.String("config", "", "producer configuration: names the key columns and checks their number")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix; with --config, the configuration's unless given")
	quiet := fs.Bool("quiet", false, "print only the token (or, with --decode, only the values, one a line)")
	values, err := parseValues(fs, args)
	if err != nil {
		return err
	}
	if *report != "" && !event.NameRE.MatchString(*report) {
		return usagef("--report: %q is not a report name (%s)", *report, event.NameRE)
	}
	var columns []string
	if *path != "" {
		if parts := strings.Split(*decode, "."); *report == "" && len(parts) > 2 {
			*report = parts[1] // a subject names its report; checked when decoded
		}
		if *report == "" {
			return usagef("--config names a report's key columns: give --report too")
		}
		cfg, err := config.LoadDraft(*path)
		if err != nil {
			return err
		}
		ref, ok := cfg.Find(*report)
		if !ok {
			return usagef("--report: no report %q in %s", *report, *path)
		}
		if len(ref.Report.Key) == 0 {
			return usagef("--report: %s has no key in %s yet (`cometstream inspect` helps to choose one)", *report, *path)
		}
		if ref.Report.Key[0] == event.ContentKey {
			return usagef("--report: %s is keyed by content (key: [\"*\"]): its tokens are hashes of whole rows (h…), not made from key values", *report)
		}
		columns = ref.Report.Key
		if !flagSet(fs, "prefix") {
			*prefix = cfg.NATS.SubjectPrefix
		}
	}
	if !event.NameRE.MatchString(*prefix) {
		return usagef("--prefix: %q must be one subject token matching [a-z0-9_-]+", *prefix)
	}
	w := os.Stdout
	if *decode != "" {
		if len(values) > 0 {
			return usagef("--decode takes one token, and no values (%q)", values[0])
		}
		return decodeKey(w, *decode, *prefix, *report, columns, *quiet)
	}
	if *report == "" {
		return usagef("--report is required (or --decode TOKEN)")
	}
	if len(values) == 0 {
		return usagef("give the key values of a row of %s", *report)
	}
	if columns != nil && len(values) != len(columns) {
		return usagef("%s is keyed by %d columns (%s), not %d values", *report, len(columns), strings.Join(columns, ", "), len(values))
	}
	token := event.JoinToken(values...)
	if len(token) > event.MaxTokenLen {
		return usagef("the token would be %d bytes, longer than %d: the producer counts such a row invalid, and it has no events", len(token), event.MaxTokenLen)
	}
	if *quiet {
		fmt.Fprintln(w, token)
		return nil
	}
	printKeyForms(w, *prefix, *report, token)
	return nil
}

// decodeKey prints the values of a token, or of a row subject's token.
func decodeKey(w io.Writer, arg, prefix, report string, columns []string, quiet bool) error {
	token := arg
	if strings.Contains(arg, ".") { // tokens have no dots: a subject
		s, err := event.ParseSubject(prefix, arg)
		if err != nil || !s.Row {
			return usagef("--decode: %q is neither a token nor a row subject under prefix %q", arg, prefix)
		}
		if report != "" && report != s.Report {
			return usagef("--decode: subject %q is of report %s, not %s", arg, s.Report, report)
		}
		token, report = s.Token, s.Report
	}
	values, err := event.ParseToken(token)
	if err != nil {
		return usagef("--decode: %q is not a row key token: %v", token, err)
	}
	if columns != nil && len(values) != len(columns) {
		return usagef("--decode: %s is keyed by %d columns (%s), the token has %d values", report, len(columns), strings.Join(columns, ", "), len(values))
	}
	if quiet {
		for _, v := range values {
			fmt.Fprintln(w, v)
		}
		return nil
	}
	for i, v := range values {
		name := "value " + strconv.Itoa(i+1)
		if columns != nil {
			name = columns[i]
		}
		fmt.Fprintf(w, "%-12s %s\n", name, strconv.Quote(v))
	}
	if report != "" {
		printKeyForms(w, prefix, report, token)
	}
	return nil
}

// printKeyForms prints where a token appears: the subjects of the row's
// events and its key in the report's bucket, with the nats CLI commands.
func printKeyForms(w io.Writer, prefix, report, token string) {
	bucket := event.BucketName(prefix, report)
	subject := event.RowSubject(prefix, report, "*", token)
	arg := "'" + token + "'"
	if strings.HasPrefix(token, "-") { // would pass for a flag
		arg = "-- " + arg
	}
	fmt.Fprintf(w, "token        %s\n", token)
	fmt.Fprintf(w, "subject      %s\n", subject)
	fmt.Fprintf(w, "bucket key   %s %s\n", bucket, token)
	fmt.Fprintf(w, "\n  nats kv get --raw %s %s\n  nats sub '%s'\n", bucket, arg, subject)
}

// flagSet reports whether the command line gave a flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
