package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/event"
)

func runInspect(ctx context.Context, args []string) error {
	fs := newFlags("inspect")
	path := fs.String("config", "", "configuration file (required)")
	name := fs.String("report", "", "report name (required)")
	rows := fs.Int("rows", 5, "rows to show")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required")
	}
	if *name == "" {
		return usagef("--report is required")
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	ref, ok := cfg.Find(*name)
	if !ok {
		return usagef("--report: no report %q in %s", *name, *path)
	}
	key, err := ref.Report.ResolveAPIKey(ref.Field, log)
	if err != nil {
		return err
	}
	client, err := comet.New(comet.Config{
		BaseURL: ref.Source.BaseURL, APIKey: key,
		Limiter: comet.NewLimiter(ref.Source.RateLimit), Logger: log,
	})
	if err != nil {
		return usagef("%s.base_url: %v", ref.Field, err)
	}
	page, err := client.FetchPage(ctx, 0, ref.Report.PageSize)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", *name, err)
	}
	printInspection(os.Stdout, *name, page, *rows, ref.Report.Key)
	return nil
}

// printInspection shows the columns, a few rows and the key candidates of a
// first page.
func printInspection(w io.Writer, name string, p *comet.Page, show int, configured []string) {
	fmt.Fprintf(w, "report %s: %q, %d rows in %d pages of %d\n\n", name, p.ReportName, p.TotalSize, p.LastPage+1, p.PageSize)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tNAME\tTYPE\tUNIQUE IN PAGE")
	unique := uniqueColumns(p)
	for i, c := range p.Columns {
		u := ""
		if unique[i] {
			u = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Key, c.Name, c.Type, u)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nfirst %d rows:\n", min(show, p.Len()))
	for i := 0; i < min(show, p.Len()); i++ {
		s, _ := event.NewSchema(p.Columns)
		fmt.Fprintf(w, "  %s\n", s.AppendRow(nil, p.Row(i)))
	}
	for _, e := range p.RowErrors() {
		fmt.Fprintf(w, "  unconvertible: %v\n", e)
	}

	var candidates []string
	for i, c := range p.Columns {
		if unique[i] {
			candidates = append(candidates, c.Key)
		}
	}
	fmt.Fprintln(w)
	switch {
	case p.Len() == 0:
		fmt.Fprintln(w, "key candidates: none (the page is empty)")
	case len(candidates) == 0:
		fmt.Fprintln(w, "key candidates: no single column is unique in this page; try a composite key, or key: [\"*\"]")
	default:
		fmt.Fprintf(w, "key candidates (unique and never null in these %d rows): %s\n", p.Len(), strings.Join(candidates, ", "))
	}
	if len(configured) > 0 {
		fmt.Fprintf(w, "configured key: [%s]\n", strings.Join(configured, ", "))
	}
}

// uniqueColumns marks the columns whose values are non-null and distinct
// across the page's rows.
func uniqueColumns(p *comet.Page) []bool {
	out := make([]bool, len(p.Columns))
	for i := range p.Columns {
		seen := make(map[event.Value]bool, p.Len())
		ok := p.Len() > 0
		for r := 0; r < p.Len() && ok; r++ {
			v := p.Row(r)[i]
			if v.IsNull() || seen[v] {
				ok = false
			}
			seen[v] = true
		}
		out[i] = ok
	}
	return out
}
