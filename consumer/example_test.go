package consumer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/natsserver"
)

// A club website's service reacts when a player's record changes.
func ExampleConsumer() {
	js, cleanup := exampleStream() // NATS with one comet.players.row.updated event
	defer cleanup()

	c, err := consumer.New(consumer.Config{
		JetStream: js, Durable: "club-website",
		Filter: consumer.Filter{Reports: []string{"players"}, Ops: []event.Op{event.OpUpdated}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	err = c.Run(ctx, func(_ context.Context, batch []*consumer.Message) error {
		for _, m := range batch {
			r := m.Row
			fmt.Printf("player %s: %v %s -> %s\n", r.Key["personId"], r.Changed, r.Before["lastName"], r.After["lastName"])
		}
		stop() // a real service keeps running
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: player 191579: [lastName] Rushesha -> Rushesha-Banda
}

// exampleStream starts an embedded NATS server with the COMET stream and
// publishes one update, as the producer would.
func exampleStream() (jetstream.JetStream, func()) {
	dir, _ := os.MkdirTemp("", "example")
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	nc, _ := nats.Connect(srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	js.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}})
	data := (&event.RowEvent{
		ID: "5f2b0c1d9e8a7b6c5d4e3f2a1b0c9d8e", Source: "comet://comet.faw.cymru/players", Token: "191579",
		Time: time.Now(), Report: "players", Op: event.OpUpdated, Sync: "s1",
		Key:     []byte(`{"personId":191579}`),
		Before:  []byte(`{"lastName":"Rushesha","personId":191579}`),
		After:   []byte(`{"lastName":"Rushesha-Banda","personId":191579}`),
		Changed: []string{"lastName"},
	}).Append(nil)
	js.Publish(ctx, "comet.players.row.updated.191579", data)
	return js, func() { nc.Close(); srv.Shutdown(); os.RemoveAll(dir) }
}
