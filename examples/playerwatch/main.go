package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS URL")
	report := flag.String("report", "persons", "report to watch")
	durable := flag.String("durable", "playerwatch", "consumer name: a restart resumes after the last update handled")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(*url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if err := watch(ctx, js, *durable, *report, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// watch prints one line for every update of a report's rows until ctx ends:
// the row's key, and each changed column's old and new value.
func watch(ctx context.Context, js jetstream.JetStream, durable, report string, w io.Writer) error {
	c, err := consumer.New(consumer.Config{
		JetStream: js, Durable: durable,
		Filter: consumer.Filter{Reports: []string{report}, Ops: []event.Op{event.OpUpdated}},
	})
	if err != nil {
		return err
	}
	return c.Run(ctx, func(_ context.Context, batch []*consumer.Message) error {
		for _, m := range batch {
			if _, err := fmt.Fprintln(w, describe(m.Row)); err != nil {
				return err // retried: nothing is acknowledged before it is printed
			}
		}
		return nil
	})
}

// describe renders an update as "personId=100004: club "Bala Town" -> "Penybont"".
func describe(r *event.RowChange) string {
	var key []string
	for _, k := range slices.Sorted(maps.Keys(r.Key)) {
		key = append(key, k+"="+r.Key[k].Raw)
	}
	var changes []string
	for _, c := range r.Changed {
		changes = append(changes, fmt.Sprintf("%s %s -> %s", c, show(r.Before[c]), show(r.After[c])))
	}
	return strings.Join(key, " ") + ": " + strings.Join(changes, ", ")
}

// show renders a value: text quoted, numbers with every digit they came
// with, null as null.
func show(v event.Value) string {
	switch v.Kind {
	case event.Text:
		return fmt.Sprintf("%q", v.Raw)
	case event.Number:
		return v.Raw
	}
	return "null"
}
