package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/config"
)

// SharedRule says how the shortest shared intervals are chosen; Print ends
// with it.
var SharedRule = fmt.Sprintf("SHORTEST SHARED scales every interval of a user by one factor, its total need ÷ its budget, so that together its reports use the whole budget (never under %s); WITH CHURN counts a confirming pass after every pass, twice the calls.", config.MinInterval)

// Print writes one table per user, the user's warnings and notes under it,
// and the rule of the shared intervals at the end.
func Print(w io.Writer, results []Result) {
	for i, res := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printUser(w, res)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, SharedRule)
}

func printUser(w io.Writer, res Result) {
	verdict := "ok"
	if !res.OK {
		var bad []string
		for _, rr := range res.Reports {
			if !rr.OK {
				bad = append(bad, rr.Report)
			}
		}
		verdict = "CANNOT KEEP THEIR INTERVALS: " + strings.Join(bad, ", ")
		if res.Need <= res.Budget && !res.Complete {
			verdict = "CANNOT TELL: " + strings.Join(bad, ", ")
		}
	}
	need := Number(res.Need)
	if !res.Complete {
		need = "at least " + need
	}
	fmt.Fprintf(w, "%s: rate_limit %s/s less %s%% = budget %s calls/min; need %s (%.0f%%), up to %s with confirming passes: %s\n",
		res.Label(), Number(res.RateLimit), Number(comet.LimiterMargin*100), Number(res.Budget), need, 100*res.Need/res.Budget, Number(res.Worst), verdict)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPORT\tPAGES\tFROM\tINTERVAL\tCALLS/MIN\tWITH CHURN\tPASS AT BEST\tSHORTEST ALONE\tSHORTEST SHARED\tSTATE")
	for _, rr := range res.Reports {
		state := "ok"
		if len(rr.Problems) > 0 {
			state = strings.ToUpper(strings.Join(rr.Problems, ", "))
		}
		interval := Seconds(rr.IntervalSeconds)
		if rr.Pages == 0 {
			fmt.Fprintf(tw, "%s\t?\t-\t%s\t-\t-\t-\t-\t-\t%s\n", rr.Report, interval, state)
			continue
		}
		from := string(rr.From)
		if rr.Note != "" {
			from += " (recomputed)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rr.Report, rr.Pages, from, interval,
			Number(rr.Need), Number(rr.Worst), Seconds(rr.PassSeconds), Seconds(rr.ShortestAloneSeconds), Seconds(rr.ShortestSharedSeconds), state)
	}
	tw.Flush()
	for _, m := range res.Warnings {
		fmt.Fprintln(w, "WARNING: "+m)
	}
	for _, m := range res.Notes {
		fmt.Fprintln(w, "note: "+m)
	}
}
