package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/statekv"
)

// reportsLookup bounds the look at the producer's state that
// warnUnknownReports makes.
const reportsLookup = 10 * time.Second

// warnUnknownReports says which of the --reports asked for the producer's
// state does not know, naming those it does: otherwise a misspelt report
// waits in silence. The caller keeps waiting all the same, since a report
// added to the producer's configuration appears later.
func warnUnknownReports(ctx context.Context, js jetstream.JetStream, prefix string, asked []string, log *slog.Logger) {
	if len(asked) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, reportsLookup)
	defer cancel()
	kv, err := statekv.Open(ctx, js, prefix)
	if errors.Is(err, statekv.ErrNoBucket) {
		log.Warn("no producer state for this subject prefix: which reports exist cannot be told",
			"prefix", prefix, "reports", strings.Join(asked, ","))
		return
	}
	if err != nil {
		log.Debug("could not read which reports the producer knows", "err", err)
		return
	}
	known, err := statekv.Reports(ctx, js, kv)
	if err != nil {
		log.Debug("could not read which reports the producer knows", "err", err)
		return
	}
	var missing []string
	for _, r := range asked {
		if !slices.Contains(known, r) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		log.Warn("the stream has no such report yet: waiting for it all the same (misspelt? a producer may add it later)",
			"reports", strings.Join(missing, ","), "stream_has", listOrNone(known))
	}
}
