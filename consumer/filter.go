package consumer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cometstream/cometstream/event"
)

// Filter selects events. The zero Filter selects every event.
type Filter struct {
	// Reports limits events to these reports; empty means every report.
	Reports []string
	// Ops selects row events by operation, Kinds report events by kind.
	// With both empty every event is selected; with one set, only what it
	// names (Ops: [updated] gives updates and no report events).
	Ops   []event.Op
	Kinds []event.ReportKind
}

// ParseOps sorts names such as "created", "updated" or "synced" (as the
// --ops flag of tail takes them) into row operations and report kinds.
func ParseOps(names []string) ([]event.Op, []event.ReportKind, error) {
	var ops []event.Op
	var kinds []event.ReportKind
	for _, n := range names {
		switch {
		case event.Op(n).Valid():
			ops = append(ops, event.Op(n))
		case event.ReportKind(n).Valid():
			kinds = append(kinds, event.ReportKind(n))
		default:
			return nil, nil, fmt.Errorf("%q is none of %s", n, opNames())
		}
	}
	return ops, kinds, nil
}

func opNames() string {
	var names []string
	for _, op := range event.Ops {
		names = append(names, string(op))
	}
	for _, k := range event.ReportKinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// Subjects returns the subject filters of f under a subject prefix. It
// fails on a report name, operation or kind that cannot occur.
func (f Filter) Subjects(prefix string) ([]string, error) {
	for _, r := range f.Reports {
		if !event.NameRE.MatchString(r) {
			return nil, fmt.Errorf("report %q must match [a-z0-9_-]+", r)
		}
	}
	for _, op := range f.Ops {
		if !op.Valid() {
			return nil, fmt.Errorf("operation %q is none of created, updated, deleted", op)
		}
	}
	for _, k := range f.Kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("report event kind %q is unknown", k)
		}
	}
	reports := f.Reports
	if len(reports) == 0 {
		reports = []string{"*"}
	}
	if len(f.Ops) == 0 && len(f.Kinds) == 0 {
		if len(f.Reports) == 0 {
			return []string{prefix + ".>"}, nil
		}
		var out []string
		for _, r := range reports {
			out = append(out, event.ReportFilter(prefix, r))
		}
		return out, nil
	}
	var out []string
	for _, r := range reports {
		for _, op := range f.Ops {
			out = append(out, event.RowSubject(prefix, r, op, ">"))
		}
		for _, k := range f.Kinds {
			out = append(out, event.ReportSubject(prefix, r, k))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
