package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/statekv"
	"github.com/cometstream/cometstream/producer"
)

// reportStatus is one line of `cometstream status`.
type reportStatus struct {
	Report      string             `json:"report"`
	State       *event.ReportState `json:"state"`
	LastSync    *event.Synced      `json:"last_sync,omitempty"`
	Unavailable *event.Unavailable `json:"unavailable,omitempty"`
	// Release is an operator's pending release of the current hold.
	Release *event.Release `json:"release,omitempty"`
	// Stale says no pass has finished for much longer than the interval:
	// the producer stopped, or this report stopped polling.
	Stale bool `json:"stale"`
}

// staleAfter is how many intervals (plus a minute) without a pass make a
// report stale.
const staleAfter = 3

// attention lists what makes a report need an operator: failing,
// unavailable, holding deletes, stale, or inconsistent pass after pass.
func (st reportStatus) attention() []string {
	var out []string
	if st.State.Unavailable != 0 {
		out = append(out, "unavailable")
	}
	if !st.State.FailingSince.IsZero() {
		out = append(out, "failing")
	}
	if st.State.Held != 0 {
		out = append(out, "holding deletes")
	}
	if st.Stale {
		out = append(out, "stale")
	}
	if st.State.Inconsistent >= producer.InconsistentAlarm {
		out = append(out, "inconsistent")
	}
	return out
}

// errAttention makes status exit 1 when a report needs an operator, so
// scripts and probes can use it.
type errAttention struct{ reports []string }

func (e *errAttention) Error() string {
	return fmt.Sprintf("%d need attention: %s", len(e.reports), strings.Join(e.reports, ", "))
}

func runStatus(ctx context.Context, args []string) error {
	fs, sf := newSubscriberFlags("status")
	stream := fs.String("stream", config.DefaultStream, "stream name")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	nc, js, err := sf.dial("cometstream status")
	if err != nil {
		return err
	}
	defer nc.Close()
	statuses, err := collectStatus(ctx, js, *stream, *prefix)
	if err != nil {
		return err
	}
	now := time.Now()
	var need []string
	for i := range statuses {
		statuses[i].Stale = stale(statuses[i], now)
		if a := statuses[i].attention(); len(a) > 0 {
			need = append(need, statuses[i].Report+" ("+strings.Join(a, ", ")+")")
		}
	}
	if *asJSON {
		if err := printJSON(os.Stdout, statuses); err != nil {
			return err
		}
	} else {
		printStatus(os.Stdout, statuses, now)
	}
	// Disabled webhook endpoints need an operator too (text output only:
	// the JSON is the reports' array).
	for _, ep := range printWebhookStatus(ctx, os.Stdout, js, *prefix, !*asJSON) {
		need = append(need, "webhook "+ep+" (disabled)")
	}
	if len(need) > 0 {
		return &errAttention{reports: need}
	}
	return nil
}

// stale reports whether a report's last pass ended longer ago than
// staleAfter intervals and a minute (a failing report backs off, and says
// so itself).
func stale(st reportStatus, now time.Time) bool {
	interval, err := time.ParseDuration(st.State.Interval)
	if err != nil || st.LastSync == nil || !st.State.FailingSince.IsZero() || st.State.Unavailable != 0 {
		return false
	}
	return now.Sub(st.LastSync.Finished) > staleAfter*interval+time.Minute
}

// collectStatus reads every report's state record and its last receipts from
// the stream.
func collectStatus(ctx context.Context, js jetstream.JetStream, stream, prefix string) ([]reportStatus, error) {
	kv, err := statekv.Open(ctx, js, prefix)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	names, err := statekv.Reports(ctx, js, kv)
	if err != nil {
		return nil, err
	}
	var out []reportStatus
	for _, name := range names {
		state, _, err := statekv.Report(ctx, kv, name)
		if err != nil {
			return nil, err
		}
		st := reportStatus{Report: name, State: &state}
		if ev := lastEvent(ctx, s, event.ReportSubject(prefix, name, event.KindSynced)); ev != nil {
			st.LastSync = ev.Synced
		}
		if st.State.Unavailable != 0 {
			if ev := lastEvent(ctx, s, event.ReportSubject(prefix, name, event.KindUnavailable)); ev != nil {
				st.Unavailable = ev.Unavailable
			}
		}
		if st.Release, err = producer.ReadRelease(ctx, kv, name); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func lastEvent(ctx context.Context, s jetstream.Stream, subject string) *event.Event {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return nil
	}
	ev, err := event.Decode(m.Data)
	if err != nil {
		return nil
	}
	return ev
}

func printStatus(w io.Writer, statuses []reportStatus, now time.Time) {
	if len(statuses) == 0 {
		fmt.Fprintln(w, "no reports yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPORT\tLAST SYNC\tRESULT\tROWS\tCHANGES (+ ~ -)\tSTATE")
	for _, st := range statuses {
		last, result, rows, changes := "never", "-", "-", "-"
		if s := st.LastSync; s != nil {
			last = s.Finished.Format(time.RFC3339) + " (" + now.Sub(s.Finished).Round(time.Second).String() + " ago)"
			result = "consistent"
			if !s.Consistent {
				result = "inconsistent"
			}
			if s.Error != "" {
				result = "partial"
			}
			rows = fmt.Sprint(s.Rows)
			changes = fmt.Sprintf("+%d ~%d -%d", s.Created, s.Updated, s.Deleted)
		}
		var notes []string
		if st.State.Unavailable != 0 {
			notes = append(notes, fmt.Sprintf("UNAVAILABLE (HTTP %d)", st.State.Unavailable))
		}
		if st.State.Held != 0 {
			notes = append(notes, fmt.Sprintf("%d DELETES HELD since %s (release: cometstream allow-deletes --report %s)", st.State.Held, st.State.HeldSince.Format(time.RFC3339), st.Report))
		}
		if r := st.Release; r != nil {
			state := "pending"
			if now.After(r.Expires) {
				state = "expired"
			}
			notes = append(notes, fmt.Sprintf("release of %d deletes %s until %s", r.Held, state, r.Expires.Format(time.RFC3339)))
		}
		if st.Stale {
			notes = append(notes, fmt.Sprintf("STALE: no pass for %s (interval %s): is the producer running?", now.Sub(st.LastSync.Finished).Round(time.Second), st.State.Interval))
		}
		if n := st.State.Inconsistent; n >= producer.InconsistentAlarm {
			notes = append(notes, fmt.Sprintf("INCONSISTENT for %d passes: no deletes until a pass is consistent (the producer's log says why)", n))
		}
		if !st.State.FailingSince.IsZero() {
			notes = append(notes, fmt.Sprintf("FAILING since %s (%d passes)", st.State.FailingSince.Format(time.RFC3339), st.State.FailedAttempts))
		}
		if st.State.LastError != "" {
			notes = append(notes, "error at "+st.State.LastErrorAt.Format(time.RFC3339)+": "+st.State.LastError)
		}
		if len(notes) == 0 {
			notes = append(notes, "ok")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Report, last, result, rows, changes, strings.Join(notes, "; "))
	}
	tw.Flush()
}
