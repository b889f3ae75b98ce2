package streamrange_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/streamrange"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestReadAsSubscriber: a user with the subscriber role reads a stream to
// its end; the server refuses to delete the consumer the read used, which
// is no error to log (the server removes it once inactive).
func TestReadAsSubscriber(t *testing.T) {
	srv := testenv.StartNATSWithRoles(t)
	ctx := context.Background()
	pjs := testenv.ConnectAs(t, srv, "producer")
	if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := pjs.Publish(ctx, "comet.persons.row.created.1", []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}

	var logs testenv.Buffer
	_, js := testenv.ConnectWith(t, natsconn.Options{URL: srv.ClientURL(), User: "sink", Password: "sink-pw"}, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	n, err := streamrange.Read(ctx, js, "COMET", jetstream.OrderedConsumerConfig{}, func(jetstream.Msg) error { return nil })
	if err != nil || n != 3 {
		t.Fatalf("read %d messages: %v", n, err)
	}
	testenv.WaitFor(t, "the refused deletion to be handled", func() bool { return strings.Contains(logs.String(), "refused to delete a consumer") })
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a read as subscriber logged an error:\n%s", logs.String())
	}
}
