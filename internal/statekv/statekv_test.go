package statekv

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestReportsAsSubscriber: the reports are listed for a user with the
// subscriber role (sinks, status, tail), which may not delete consumers:
// listing creates none, so the server refuses nothing. Deleted keys are
// not listed.
func TestReportsAsSubscriber(t *testing.T) {
	srv := testenv.StartNATSWithRoles(t)
	ctx := context.Background()
	pjs := testenv.ConnectAs(t, srv, "producer")
	kv, err := pjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"persons", "fees", "gone", "producer.writer"} {
		if _, err := kv.Put(ctx, k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	kv.Delete(ctx, "gone")

	errs := make(chan error, 10)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("sink", "sink-pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	skv, err := Open(ctx, js, "comet")
	if err != nil {
		t.Fatal(err)
	}
	names, err := Reports(ctx, js, skv)
	if err != nil || !slices.Equal(names, []string{"fees", "persons"}) {
		t.Fatalf("reports %v, %v", names, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil {
		t.Fatalf("the server refused the subscriber: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("the server refused the subscriber: %v", err)
	default:
	}
}
