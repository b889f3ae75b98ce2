package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/statekv"
	"github.com/cometstream/cometstream/producer"
)

func runAllowDeletes(ctx context.Context, args []string) error {
	fs, sf := newSubscriberFlags("allow-deletes")
	report := fs.String("report", "", "report whose current hold of deletes to release (required)")
	prefix := fs.String("prefix", config.DefaultSubjectPrefix, "subject prefix")
	ttl := fs.Duration("ttl", producer.DefaultReleaseTTL, "how long the release waits for the pass that applies it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *report == "" {
		return usagef("--report is required")
	}
	if *ttl <= 0 {
		return usagef("--ttl: %s must be positive", *ttl)
	}
	nc, js, err := sf.dial("cometstream allow-deletes")
	if err != nil {
		return err
	}
	defer nc.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := knownReport(pctx, js, *prefix, *report); err != nil {
		return err
	}
	rel, err := producer.ReleaseDeletes(pctx, js, *prefix, *report, *ttl, time.Now())
	switch {
	case errors.Is(err, producer.ErrNothingHeld):
		// Like produce --allow-deletes: a request that cannot apply.
		return &usageError{err: fmt.Errorf("%w (a release applies to a hold that exists; `cometstream status` shows them)", err)}
	case err != nil:
		// A refused publish surfaces as a timeout; the connection knows why.
		if last := nc.LastError(); last != nil {
			return fmt.Errorf("release the deletes of %s: %w (an admin or producer user may do this)", *report, last)
		}
		return err
	}
	fmt.Printf("released the hold of %d deletes of %s (hold %s): the next consistent pass deleting no more than that applies them; the release expires at %s\n",
		rel.Held, *report, rel.Hold, rel.Expires.Local().Format(time.RFC3339))
	return nil
}

// knownReport refuses, as bad usage, a report the producer's state does not
// know (or a prefix no producer has used), naming the reports it knows.
func knownReport(ctx context.Context, js jetstream.JetStream, prefix, report string) error {
	kv, err := statekv.Open(ctx, js, prefix)
	if errors.Is(err, statekv.ErrNoBucket) {
		return &usageError{err: err}
	}
	if err != nil {
		return err
	}
	names, err := statekv.Reports(ctx, js, kv)
	if err != nil {
		return err
	}
	if !slices.Contains(names, report) {
		return usagef("--report: no report %q in the producer's state (it has %s)", report, listOrNone(names))
	}
	return nil
}

// listOrNone joins names for a message.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}
