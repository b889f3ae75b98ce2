package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer/webhook"
)

// printWebhookStatus adds the webhook endpoints disabled by a 410 Gone to
// the output of status (when print), each with the command that enables
// it again, and returns their names.
func printWebhookStatus(ctx context.Context, w io.Writer, js jetstream.JetStream, prefix string, print bool) []string {
	disabled, err := webhook.ListDisabled(ctx, js, prefix)
	if err != nil {
		if print {
			fmt.Fprintf(w, "\nwebhooks: cannot read %s: %s\n", webhook.BucketName(prefix), err)
		}
		return nil
	}
	if len(disabled) > 0 && print {
		fmt.Fprintln(w)
	}
	var names []string
	for _, d := range disabled {
		names = append(names, d.Endpoint)
		if print {
			fmt.Fprintf(w, "webhook %s: DISABLED since %s (HTTP %d); %s\n",
				d.Endpoint, d.DisabledAt.Format(time.RFC3339), d.Status, webhook.EnableCommand(d.Endpoint))
		}
	}
	return names
}
