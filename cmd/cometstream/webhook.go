package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/ops"
)

func runSinkWebhook(ctx context.Context, args []string) error {
	replay := len(args) > 0 && args[0] == "replay"
	if replay {
		args = args[1:]
	}
	name := "sink webhook"
	if replay {
		name += " replay"
	}
	fs := newFlags(name)
	var f sinkFlags
	f.nats.Register(fs)
	fs.StringVar(&f.stream, "stream", "COMET", "stream name")
	fs.StringVar(&f.prefix, "prefix", "comet", "subject prefix")
	f.log.register(fs)
	path := fs.String("config", "", "webhook configuration file (required)")
	endpoint := ""
	if replay {
		fs.StringVar(&endpoint, "endpoint", "", "replay only this endpoint's dead letters")
	} else {
		fs.StringVar(&f.http, "http", "", "address of /metrics, /healthz and /readyz (default: none)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required")
	}
	log, err := f.log.logger()
	if err != nil {
		return err
	}
	cfg, err := webhook.Load(*path, log)
	if err != nil {
		return err
	}
	nc, js, err := connectSink(&f.nats, "cometstream "+name, log)
	if err != nil {
		return err
	}
	defer natsconn.Shutdown(nc, 5*time.Second)
	reg := ops.NewRegistry()
	b, err := webhook.New(cfg, webhook.Options{JetStream: js, Stream: f.stream, Prefix: f.prefix, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	if replay {
		res, err := b.Replay(ctx, endpoint)
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
	if f.http != "" {
		srv, err := ops.Start(f.http, reg, nc.IsConnected, log)
		if err != nil {
			return &usageError{err: err}
		}
		defer func() {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Close(c)
		}()
	}
	return b.Run(ctx)
}
