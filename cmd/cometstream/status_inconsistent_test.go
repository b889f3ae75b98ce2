package main

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
)

// TestStatusSaysInconsistent: a report whose passes have been
// inconsistent for producer.InconsistentAlarm passes in a row applies no
// deletes: status names it and exits 1.
func TestStatusSaysInconsistent(t *testing.T) {
	url, js := startStream(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet")})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []struct{ name, value string }{
		{"persons", `{"checkpoint":1,"key":["personId"],"inconsistent":10}`},
		{"fees", `{"checkpoint":1,"key":["feeRef"],"inconsistent":9}`},
	} {
		if _, err := kv.Put(ctx, rec.name, []byte(rec.value)); err != nil {
			t.Fatal(err)
		}
	}
	status, out := runBin(t, nil, "status", "--nats", url)
	if status != 1 || !strings.Contains(out, "INCONSISTENT for 10 passes") || !strings.Contains(out, "need attention: persons (inconsistent)") || strings.Contains(out, "fees (") {
		t.Errorf("status exit %d:\n%s", status, out)
	}
}
