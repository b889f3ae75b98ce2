package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/inspect"
)

// errEnough stops a fetch once inspect has the pages it wants.
var errEnough = errors.New("enough pages")

func runInspect(ctx context.Context, args []string) error {
	fs := newFlags("inspect")
	var cf configFlag
	cf.register(fs, "configuration file (required); the report needs no key yet")
	name := fs.String("report", "", "report name (required)")
	rows := fs.Int("rows", 5, "rows to show")
	pages := fs.Int("pages", 20, "pages to check for key candidates (0: every page)")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cf.path == "" {
		return usagef("--config is required")
	}
	if *name == "" {
		return usagef("--report is required")
	}
	if *pages < 0 {
		return usagef("--pages: %d must not be negative", *pages)
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	cfg, err := cf.load(true)
	if err != nil {
		return err
	}
	ref, ok := cfg.Find(*name)
	if !ok {
		return usagef("--report: no report %q in %s", *name, *cf.path)
	}
	key, err := ref.Report.ResolveAPIKey(ref.Field, log)
	if err != nil {
		return inFile(*cf.path, err)
	}
	client, err := comet.New(comet.Config{
		BaseURL: ref.Source.BaseURL, APIKey: key, Timeout: ref.Source.Timeout,
		Path: ref.Report.Path, Params: ref.Report.Params,
		Limiter: comet.NewLimiter(ref.Source.RateLimit), Logger: log,
	})
	if err != nil {
		return usagef("%s: %v", ref.Field, err)
	}

	f := inspect.Fetched{Report: *name, Asked: ref.Report.PageSize}
	var cols []event.Column
	var all [][]event.Value
	undeclared := map[string]bool{}
	sum, err := client.Fetch(ctx, comet.FetchOptions{PageSize: ref.Report.PageSize, ExpectPages: max(*pages, 1)}, func(p *comet.Page) error {
		if cols == nil {
			cols = p.Columns
			f.ReportName = p.ReportName
		} else if !slices.Equal(cols, p.Columns) {
			return fmt.Errorf("the columns changed between pages: run inspect again")
		}
		for _, u := range p.Undeclared {
			undeclared[u] = true
		}
		for _, c := range p.CellErrors() {
			f.InvalidCellCount++
			if len(f.InvalidCells) < 5 {
				f.InvalidCells = append(f.InvalidCells, fmt.Sprintf("page %d %s", p.Page, c))
			}
		}
		for i := 0; i < p.Len(); i++ {
			all = append(all, slices.Clone(p.Row(i)))
		}
		f.PagesFetched++
		if *pages > 0 && f.PagesFetched >= *pages {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("inspect %s: %w", *name, err)
	}
	f.TotalSize, f.Pages, f.PageSize = sum.TotalSize, sum.LastPage+1, sum.PageSize
	for u := range undeclared {
		f.Undeclared = append(f.Undeclared, u)
	}
	slices.Sort(f.Undeclared)
	if s, err := event.NewSchema(cols); err == nil {
		for _, r := range all[:min(*rows, len(all))] {
			f.Sample = append(f.Sample, string(s.AppendRow(nil, r)))
		}
	}
	inspect.Print(os.Stdout, f, inspect.Analyze(cols, all, ref.Report.Key), ref.Report.Key)
	return nil
}
