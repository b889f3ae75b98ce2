package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cometstream/cometstream/event"
)

// Fetched is what the inspect command fetched, beside the rows.
type Fetched struct {
	Report     string // the configured name
	ReportName string // COMET's
	TotalSize  int
	// Pages is the report's page count, PagesFetched how many were read.
	Pages, PagesFetched int
	// PageSize is what COMET served, Asked what was asked.
	PageSize, Asked int
	Undeclared      []string
	// InvalidCells are a few cells that did not convert, described, and
	// InvalidCellCount how many there were.
	InvalidCells     []string
	InvalidCellCount int
	// Sample are the first rows, canonical JSON.
	Sample []string
}

// Print writes what a user choosing a key needs: the columns, a few rows,
// the key candidates ranked, repeated values with an example, and the key
// to configure.
func Print(w io.Writer, f Fetched, a *Analysis, configured []string) {
	fmt.Fprintf(w, "report %s: %q, %d rows in %d pages of %d\n", f.Report, f.ReportName, f.TotalSize, f.Pages, f.PageSize)
	if f.PageSize < f.Asked {
		fmt.Fprintf(w, "COMET serves %d rows a page, fewer than the %d asked (page_size): cometstream pages by what it serves\n", f.PageSize, f.Asked)
	}
	if f.PagesFetched < f.Pages {
		fmt.Fprintf(w, "checked %d rows in the first %d of %d pages (--pages 0 checks every page)\n", a.Rows, f.PagesFetched, f.Pages)
	} else {
		fmt.Fprintf(w, "checked all %d rows\n", a.Rows)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tNAME\tTYPE\tNULLS\tDISTINCT\tUNIQUE")
	for _, c := range a.Columns {
		u := ""
		if c.Unique {
			u = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", c.Key, c.Name, c.Type, c.Nulls, c.Distinct, u)
	}
	tw.Flush()
	if len(f.Undeclared) > 0 {
		fmt.Fprintf(w, "\nrows also carry fields columnKeys does not list (left out of events): %s\n", strings.Join(f.Undeclared, ", "))
	}
	if f.InvalidCellCount > 0 {
		fmt.Fprintf(w, "\n%d cells do not convert to their column's type (published as null), e.g.:\n", f.InvalidCellCount)
		for _, c := range f.InvalidCells {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	fmt.Fprintf(w, "\nfirst %d rows:\n", len(f.Sample))
	for _, r := range f.Sample {
		fmt.Fprintf(w, "  %s\n", r)
	}

	fmt.Fprintln(w)
	switch {
	case a.Rows == 0:
		fmt.Fprintln(w, "key candidates: none (the report is empty)")
	case len(a.Candidates) == 0:
		fmt.Fprintln(w, "key candidates: no column and no pair of columns is unique and never null: only key: [\"*\"] fits (identity by content)")
	default:
		fmt.Fprintf(w, "key candidates (unique and never null in these %d rows), best first:\n", a.Rows)
		for _, c := range a.Candidates {
			fmt.Fprintf(w, "  [%s]\n", strings.Join(c.Columns, ", "))
		}
	}
	for _, r := range a.NearlyUnique {
		printRepeat(w, "nearly unique, but repeats", r)
	}
	if a.Rows > 0 {
		fmt.Fprintf(w, "suggested key: %s\n", keyYAML(a.Suggested()))
	}
	switch {
	case len(configured) == 0:
		fmt.Fprintln(w, "configured key: none yet")
	case a.Configured != nil && a.Configured.Values > 0:
		printRepeat(w, "configured key "+keyYAML(configured)+" repeats", *a.Configured)
		fmt.Fprintln(w, "  (a repeated key makes passes inconsistent, so no deletes: choose a key that is unique)")
	case a.Configured == nil && !(len(configured) == 1 && configured[0] == event.ContentKey):
		fmt.Fprintf(w, "configured key: %s names a column the report does not have\n", keyYAML(configured))
	default:
		fmt.Fprintf(w, "configured key: %s\n", keyYAML(configured))
	}
}

func printRepeat(w io.Writer, what string, r Repeat) {
	fmt.Fprintf(w, "%s: [%s]: %d values on %d rows, e.g. %s on:\n", what, strings.Join(r.Columns, ", "), r.Values, r.Rows, r.Example)
	for _, row := range r.ExampleRows {
		fmt.Fprintf(w, "    %s\n", row)
	}
}

// keyYAML renders a key as it goes in the configuration.
func keyYAML(key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		if event.TokenPart(k) == k {
			parts[i] = k
		} else {
			parts[i] = fmt.Sprintf("%q", k)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
