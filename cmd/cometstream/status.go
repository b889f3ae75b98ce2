package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/natsconn"
)

// reportStatus is one line of `cometstream status`.
type reportStatus struct {
	Report      string             `json:"report"`
	State       *event.ReportState `json:"state"`
	LastSync    *event.Synced      `json:"last_sync,omitempty"`
	Unavailable *event.Unavailable `json:"unavailable,omitempty"`
}

func runStatus(ctx context.Context, args []string) error {
	fs := newFlags("status")
	var no natsconn.Options
	no.Register(fs)
	stream := fs.String("stream", config.DefaultStream, "stream name")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	nc, js, err := connectSink(&no, "cometstream status", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	statuses, err := collectStatus(ctx, js, *stream, *prefix)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(statuses)
	}
	printStatus(os.Stdout, statuses, time.Now())
	return nil
}

// collectStatus reads every report's state record and its last receipts from
// the stream.
func collectStatus(ctx context.Context, js jetstream.JetStream, stream, prefix string) ([]reportStatus, error) {
	kv, err := js.KeyValue(ctx, event.StateBucketName(prefix))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("no producer state in bucket %s: has a producer run with subject prefix %q?", event.StateBucketName(prefix), prefix)
	}
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for k := range lister.Keys() {
		if !strings.Contains(k, ".") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []reportStatus
	for _, name := range names {
		st := reportStatus{Report: name, State: &event.ReportState{}}
		e, err := kv.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(e.Value(), st.State); err != nil {
			return nil, fmt.Errorf("state of %s: %w", name, err)
		}
		if ev := lastEvent(ctx, s, event.ReportSubject(prefix, name, event.KindSynced)); ev != nil {
			st.LastSync = ev.Synced
		}
		if st.State.Unavailable != 0 {
			if ev := lastEvent(ctx, s, event.ReportSubject(prefix, name, event.KindUnavailable)); ev != nil {
				st.Unavailable = ev.Unavailable
			}
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
			notes = append(notes, fmt.Sprintf("%d DELETES HELD (cometstream allow-deletes --report %s)", st.State.Held, st.Report))
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

func runAllowDeletes(ctx context.Context, args []string) error {
	fs := newFlags("allow-deletes")
	var no natsconn.Options
	no.Register(fs)
	report := fs.String("report", "", "report whose held deletes to release (required)")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *report == "" {
		return usagef("--report is required")
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	nc, js, err := connectSink(&no, "cometstream allow-deletes", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := js.KeyValue(ctx, event.StateBucketName(*prefix))
	if err != nil {
		return fmt.Errorf("state bucket: %w", err)
	}
	e, err := kv.Get(ctx, *report)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return usagef("--report: no report %q has been produced", *report)
	}
	if err != nil {
		return err
	}
	var st event.ReportState
	_ = json.Unmarshal(e.Value(), &st)
	b, _ := json.Marshal(map[string]any{"at": time.Now().UTC(), "held": st.Held})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := kv.Put(pctx, event.AllowDeletesKey(*report), b); err != nil {
		// A refused publish surfaces as a timeout; the connection knows why.
		if last := nc.LastError(); last != nil {
			return fmt.Errorf("release deletes of %s: %w (an admin or producer user may do this)", *report, last)
		}
		return err
	}
	if st.Held == 0 {
		fmt.Printf("%s holds no deletes now; the release applies to the next pass that would hold some\n", *report)
	} else {
		fmt.Printf("released %d held deletes of %s: the next consistent pass applies them\n", st.Held, *report)
	}
	return nil
}
