package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/opshttp"
)

// webhookHelp is what each `sink webhook` command says it does.
var webhookHelp = map[string]string{
	"": `usage: cometstream sink webhook --nats URL --config FILE [--reports a,b] [--durable PREFIX] [--from-start] [--http ADDR]

Delivers events to the endpoints of --config (Standard Webhooks), each through its own durable
consumer <durable>_<endpoint> (default webhook_<endpoint>). An endpoint whose consumer does not
exist yet starts at the events published from then on (start: new), or at the beginning of the
stream with start: all or --from-start; an existing consumer keeps its position. An endpoint
answering 410 Gone is disabled, across restarts, until "sink webhook enable"; the bridge keeps
running (not ready while no endpoint is enabled).`,
	"replay": `usage: cometstream sink webhook replay --nats URL --config FILE [--endpoint NAME]

Sends the dead letters of every endpoint (or of --endpoint) again, once each; a delivered one is
removed from the dead-letter stream. Exits 1 when some could not be delivered.`,
	"enable": `usage: cometstream sink webhook enable --nats URL --config FILE --endpoint NAME

Enables an endpoint disabled by a 410 Gone again: removes its record from the <prefix>-webhooks
bucket. A running bridge resumes delivering the endpoint's waiting events within seconds; a
stopped one at its next start.`,
	"reset": `usage: cometstream sink webhook reset --nats URL --config FILE --endpoint NAME [--durable PREFIX]

Starts an endpoint's deliveries over: deletes its durable consumer (<durable>_<endpoint>) and its
disablement, so that the next "sink webhook" begins it as its start setting says (new: the events
published from then on; all: every event the stream holds). Deliveries waiting for a retry are
dropped: they are not sent again (they are still in the stream; start: all sends the history).
Refused while a bridge is delivering the endpoint: stop it first.`,
}

func runSinkWebhook(ctx context.Context, args []string) error {
	sub := ""
	if len(args) > 0 && slices.Contains([]string{"replay", "enable", "reset"}, args[0]) {
		sub, args = args[0], args[1:]
	}
	name := strings.TrimSpace("sink webhook " + sub)
	fs := newFlags(name)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", webhookHelp[sub])
		fs.PrintDefaults()
	}
	var f sinkFlags
	f.subscriberFlags.register(fs)
	fs.StringVar(&f.stream, "stream", config.DefaultStream, "stream name")
	fs.StringVar(&f.prefix, "prefix", config.DefaultSubjectPrefix, "subject prefix")
	path := fs.String("config", "", "webhook configuration file (required)")
	endpoint := ""
	durable := func() {
		fs.StringVar(&f.durable, "durable", webhook.DefaultDurable, "prefix of the endpoints' consumer names, <prefix>_<endpoint>")
	}
	switch sub {
	case "replay":
		fs.StringVar(&endpoint, "endpoint", "", "replay only this endpoint's dead letters")
	case "enable":
		fs.StringVar(&endpoint, "endpoint", "", "the endpoint to enable again (required)")
	case "reset":
		fs.StringVar(&endpoint, "endpoint", "", "the endpoint to start over (required)")
		durable()
	default:
		fs.StringVar(&f.http, "http", "", "address of /metrics, /healthz and /readyz (ready: NATS connected and an endpoint enabled; default: none)")
		fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on --http")
		fs.StringVar(&f.reports, "reports", "", "comma-separated reports to deliver, within each endpoint's own reports (default: each endpoint's)")
		durable()
		fs.BoolVar(&f.fromStart, "from-start", false, "endpoints whose consumer does not exist yet start at the beginning of the stream (as start: all); existing consumers keep their position")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required")
	}
	if (sub == "enable" || sub == "reset") && endpoint == "" {
		return usagef("--endpoint is required")
	}
	if f.pprof && f.http == "" {
		return usagef("--pprof serves the profiles on the --http endpoint: give --http too")
	}
	log, err := f.log.logger()
	if err != nil {
		return err
	}
	cfg, err := webhook.Load(*path, log)
	if err != nil {
		return err
	}
	if endpoint != "" {
		if err := knownEndpoint(cfg, endpoint, *path); err != nil {
			return err
		}
	}
	nc, js, err := f.connect("cometstream "+name, log)
	if err != nil {
		return err
	}
	defer natsconn.Shutdown(nc, 5*time.Second)
	reg := opshttp.NewRegistry()
	b, err := webhook.New(cfg, webhook.Options{
		JetStream: js, Stream: f.stream, Prefix: f.prefix, Logger: log, Registerer: reg,
		Durable: f.durable, Reports: splitList(f.reports), FromStart: f.fromStart,
	})
	if errors.Is(err, webhook.ErrInvalidOptions) {
		return &usageError{err: err}
	}
	if err != nil {
		return err
	}
	switch sub {
	case "replay":
		return webhookReplay(ctx, b, endpoint, cfg)
	case "enable":
		return natsRefusal(nc, webhookEnable(ctx, b, endpoint))
	case "reset":
		return natsRefusal(nc, webhookReset(ctx, b, cfg, endpoint))
	}
	warnUnknownReports(ctx, js, f.prefix, webhookReports(cfg, splitList(f.reports)), log)
	stopOps, err := serveOps(opshttp.Config{Addr: f.http, Registry: reg, Ready: b.Ready, Pprof: f.pprof, Logger: log}, "--http")
	if err != nil {
		return err
	}
	defer stopOps()
	return b.Run(ctx)
}

// knownEndpoint refuses an --endpoint the configuration does not have.
func knownEndpoint(cfg *webhook.Config, endpoint, path string) error {
	var names []string
	for _, ep := range cfg.Endpoints {
		if ep.Name == endpoint {
			return nil
		}
		names = append(names, ep.Name)
	}
	return usagef("--endpoint: no endpoint %q in %s (it has %s)", endpoint, path, strings.Join(names, ", "))
}

// natsRefusal adds what the server said to an operation that failed: a
// refused request surfaces as a timeout, and the connection knows why.
func natsRefusal(nc *nats.Conn, err error) error {
	if err == nil || errors.Is(err, webhook.ErrEndpointBusy) {
		return err
	}
	if last := nc.LastError(); last != nil {
		return fmt.Errorf("%w (%w)", err, last)
	}
	return err
}

func webhookReplay(ctx context.Context, b *webhook.Bridge, endpoint string, cfg *webhook.Config) error {
	res, err := b.Replay(ctx, endpoint)
	if errors.Is(err, webhook.ErrUnknownEndpoint) {
		return &usageError{err: fmt.Errorf("--endpoint: %w", err)}
	}
	if err != nil {
		return err
	}
	failed := 0
	for ep, r := range res {
		fmt.Printf("%s: %d delivered, %d still failing\n", ep, r.Delivered, r.Failed)
		failed += r.Failed
	}
	if failed > 0 {
		return fmt.Errorf("%d dead letters could not be delivered and stay in %s", failed, cfg.DeadLetterStream)
	}
	return nil
}

func webhookEnable(ctx context.Context, b *webhook.Bridge, endpoint string) error {
	d, err := b.Enable(ctx, endpoint)
	if err != nil {
		return fmt.Errorf("enable %s: %w", endpoint, err)
	}
	if d == nil {
		fmt.Printf("%s is not disabled: nothing to do\n", endpoint)
		return nil
	}
	fmt.Printf("enabled %s (%s): a running bridge resumes delivering its waiting events within seconds, a stopped one when it starts\n", endpoint, describeDisablement(d))
	return nil
}

func webhookReset(ctx context.Context, b *webhook.Bridge, cfg *webhook.Config, endpoint string) error {
	res, err := b.Reset(ctx, endpoint)
	if err != nil {
		return fmt.Errorf("reset %s: %w", endpoint, err)
	}
	start := webhook.StartNew
	for _, ep := range cfg.Endpoints {
		if ep.Name == endpoint {
			start = ep.Start
		}
	}
	if res.Deleted {
		fmt.Printf("deleted consumer %s: deliveries waiting for a retry are dropped (still in the stream)\n", res.Consumer)
	} else {
		fmt.Printf("no consumer %s: nothing to delete\n", res.Consumer)
	}
	if res.Enabled != nil {
		fmt.Printf("removed the disablement of %s (%s)\n", endpoint, describeDisablement(res.Enabled))
	}
	if start == webhook.StartAll {
		fmt.Printf("the next sink webhook sends %s every event the stream holds (start: all)\n", endpoint)
	} else {
		fmt.Printf("the next sink webhook sends %s the events published from then on (start: new)\n", endpoint)
	}
	return nil
}

func describeDisablement(d *webhook.Disablement) string {
	s := fmt.Sprintf("disabled since %s after HTTP %d", d.DisabledAt.Format(time.RFC3339), d.Status)
	if d.EventID != "" {
		s += " for event " + d.EventID
	}
	return s
}

// webhookReports is every report the bridge was asked for by name: those
// of --reports and of the endpoints, each once, sorted.
func webhookReports(cfg *webhook.Config, flag []string) []string {
	names := slices.Clone(flag)
	for _, ep := range cfg.Endpoints {
		names = append(names, ep.Reports...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
