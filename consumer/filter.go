package consumer

import (
	"fmt"
	"slices"

	"github.com/cometstream/cometstream/internal/event"
)

var rowOps = []string{event.OpCreated, event.OpUpdated, event.OpDeleted}
var reportKinds = []string{event.KindSynced, event.KindSchema, event.KindUnavailable, event.KindHeld}

// filterSubjects turns report and op filters into subject filters. Empty
// means everything.
func filterSubjects(prefix string, reports, ops []string) ([]string, error) {
	for _, r := range reports {
		if !event.NameRE.MatchString(r) {
			return nil, fmt.Errorf("report %q must match [a-z0-9_-]+", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(rowOps, op) && !slices.Contains(reportKinds, op) {
			return nil, fmt.Errorf("op %q is none of created, updated, deleted, synced, schema, unavailable, held", op)
		}
	}
	rs := reports
	if len(rs) == 0 {
		rs = []string{"*"}
	}
	if len(ops) == 0 {
		if len(reports) == 0 {
			return []string{prefix + ".>"}, nil
		}
		var out []string
		for _, r := range rs {
			out = append(out, prefix+"."+r+".>")
		}
		return out, nil
	}
	var out []string
	for _, r := range rs {
		for _, op := range ops {
			if slices.Contains(rowOps, op) {
				out = append(out, prefix+"."+r+".row."+op+".>")
			} else {
				out = append(out, prefix+"."+r+".report."+op)
			}
		}
	}
	return out, nil
}
