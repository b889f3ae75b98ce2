package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/config"
)

func runTail(ctx context.Context, args []string) error {
	fs, sf := newSubscriberFlags("tail")
	reports := fs.String("reports", "", "comma-separated reports (default: all)")
	opsFlag := fs.String("ops", "", "comma-separated operations: created, updated, deleted, synced, schema, unavailable, held, failed (default: all)")
	fromStart := fs.Bool("from-start", false, "print the stream from its beginning, not only new events")
	stream := fs.String("stream", config.DefaultStream, "stream name")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix")
	color := fs.String("color", "auto", "human-readable coloured output: auto (on a terminal), always or never (JSON lines)")
	log, err := sf.log.parse(fs, args)
	if err != nil {
		return err
	}
	human := *color == "always" || (*color == "auto" && isTerminal(os.Stdout))
	if *color != "auto" && *color != "always" && *color != "never" {
		return usagef("--color: %q is not auto, always or never", *color)
	}
	nc, js, err := sf.connect("cometstream tail", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ops, kinds, err := consumer.ParseOps(splitList(*opsFlag))
	if err != nil {
		return usagef("--ops: %v", err)
	}
	c, err := consumer.NewReader(consumer.ReaderConfig{
		JetStream: js, Stream: *stream, Prefix: *prefix, Name: "cometstream_tail",
		Filter:     consumer.Filter{Reports: splitList(*reports), Ops: ops, Kinds: kinds},
		DeliverNew: !*fromStart, Logger: log,
	})
	if err != nil {
		return usagef("--reports: %v", err)
	}
	warnUnknownReports(ctx, js, *prefix, splitList(*reports), log)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return c.Run(ctx, func(_ context.Context, batch []*consumer.Message) error {
		for _, m := range batch {
			if human {
				printHuman(w, m.Event, true)
			} else {
				w.Write(m.Body)
				w.WriteByte('\n')
			}
		}
		return w.Flush()
	})
}

const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiCyan   = "\x1b[36m"
)

// printHuman writes one readable line per event, coloured when asked.
func printHuman(w io.Writer, e *event.Event, colour bool) {
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return code + s + ansiReset
	}
	ts := paint(ansiDim, e.Time.Local().Format("15:04:05"))
	switch {
	case e.Row != nil:
		r := e.Row
		opColour := map[event.Op]string{event.OpCreated: ansiGreen, event.OpUpdated: ansiYellow, event.OpDeleted: ansiRed}[r.Op]
		line := fmt.Sprintf("%s %s %s %s", ts, paint(ansiBold, r.Report), paint(opColour, fmt.Sprintf("%-7s", r.Op)), keyText(r.Key))
		switch r.Op {
		case event.OpUpdated:
			var parts []string
			for _, c := range r.Changed {
				parts = append(parts, fmt.Sprintf("%s: %s → %s", c, valueText(r.Before[c]), valueText(r.After[c])))
			}
			line += "  " + strings.Join(parts, ", ")
		case event.OpCreated:
			line += "  " + rowText(r.After, r.Key)
		}
		fmt.Fprintln(w, line)
	case e.Synced != nil:
		s := e.Synced
		state := paint(ansiGreen, "consistent")
		if !s.Consistent {
			state = paint(ansiYellow, "not consistent")
		}
		fmt.Fprintf(w, "%s %s %s %d rows, +%d ~%d -%d, %s%s\n", ts, paint(ansiBold, s.Report), paint(ansiCyan, "synced "), s.Rows, s.Created, s.Updated, s.Deleted, state, heldText(s.DeletesHeld))
	case e.Schema != nil:
		fmt.Fprintf(w, "%s %s %s %d columns\n", ts, paint(ansiBold, e.Schema.Report), paint(ansiCyan, "schema "), len(e.Schema.Columns))
	case e.Unavailable != nil:
		fmt.Fprintf(w, "%s %s %s HTTP %d\n", ts, paint(ansiBold, e.Unavailable.Report), paint(ansiRed, "UNAVAILABLE"), e.Unavailable.Status)
	case e.Held != nil:
		h := e.Held
		switch h.Phase {
		case event.HoldReleased:
			fmt.Fprintf(w, "%s %s %s on the operator's release: %d of %d rows deleted\n", ts, paint(ansiBold, h.Report), paint(ansiYellow, "deletes released"), h.WouldDelete, h.RowsBefore)
		case event.HoldEnded:
			fmt.Fprintf(w, "%s %s %s under the threshold: %d of %d rows deleted\n", ts, paint(ansiBold, h.Report), paint(ansiGreen, "hold ended"), h.WouldDelete, h.RowsBefore)
		default: // started (or a producer from before phases)
			fmt.Fprintf(w, "%s %s %s %d of %d rows would be deleted\n", ts, paint(ansiBold, h.Report), paint(ansiRed, "DELETES HELD"), h.WouldDelete, h.RowsBefore)
		}
	case e.Failed != nil:
		fmt.Fprintf(w, "%s %s %s since %s (%d passes): %s\n", ts, paint(ansiBold, e.Failed.Report), paint(ansiRed, "FAILING"), e.Failed.Since.Local().Format("15:04:05"), e.Failed.Attempts, e.Failed.Error)
	}
}

func heldText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d deletes held", n)
}

func valueText(v event.Value) string {
	switch v.Kind {
	case event.Null:
		return "null"
	case event.Text:
		return fmt.Sprintf("%q", v.Raw)
	}
	return v.Raw
}

func keyText(k event.Row) string {
	keys := make([]string, 0, len(k))
	for c := range k {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	var parts []string
	for _, c := range keys {
		parts = append(parts, c+"="+k[c].Raw)
	}
	return strings.Join(parts, " ")
}

func rowText(r, key event.Row) string {
	var parts []string
	cols := make([]string, 0, len(r))
	for c := range r {
		if _, isKey := key[c]; !isKey {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	for _, c := range cols[:min(len(cols), 4)] {
		parts = append(parts, c+"="+valueText(r[c]))
	}
	if len(cols) > 4 {
		parts = append(parts, "…")
	}
	return strings.Join(parts, " ")
}
