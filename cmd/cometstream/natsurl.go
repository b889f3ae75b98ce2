package main

import (
	"fmt"
	"os"

	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/redact"
)

// Where a NATS URL came from, as log lines and errors name it.
const (
	fromFlag     = "--nats"
	fromConfig   = "nats.url"
	fromEnv      = "$NATS_URL"
	fromEmbedded = "the embedded server (nats.listen)"
)

// producerURL chooses the producer's NATS URL and says where it came from:
// --nats, then nats.url, then $NATS_URL; none means the embedded server.
// A nats.listen written in the file asks for the embedded server: it wins
// over $NATS_URL (exported for the CLI, as the README suggests), though not
// with ha, which has no embedded server. envIgnored reports that case.
func producerURL(flag string, cfg *config.Config) (u, from string, envIgnored bool) {
	env := os.Getenv("NATS_URL")
	switch {
	case flag != "":
		return flag, fromFlag, false
	case cfg.NATS.URL != "":
		return cfg.NATS.URL, fromConfig, false
	case env != "" && cfg.ListenSet() && cfg.HA.LeaseTTL == 0:
		return "", fromEmbedded, true
	case env != "":
		return env, fromEnv, false
	}
	return "", fromEmbedded, false
}

// subscriberURLFrom says where a command's --nats value came from: the
// flag's default is $NATS_URL.
func subscriberURLFrom(u string) string {
	if env := os.Getenv("NATS_URL"); env != "" && u == env {
		return fromEnv
	}
	return fromFlag
}

// withURL names the URL, and where it came from, in a connection error.
func withURL(err error, u, from string) error {
	return fmt.Errorf("%w (NATS URL %s, from %s)", err, redact.URLs(u), from)
}
