package producer

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestStorageFullLosesNothing: when JetStream has no room left (its disk,
// or its storage limit, is full) passes fail saying so, and once room is
// made the producer catches up with nothing lost, duplicated or invented.
// The room is taken by another stream on the same server, as other data
// on a full disk would be, and freed by purging it.
func TestStorageFullLosesNothing(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the server did not start")
	}
	t.Cleanup(srv.Shutdown)
	e := newEnvOn(t, srv, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 3000})
	ctx := context.Background()
	e.open(e.reportConfig("persons"))
	e.poll("persons")

	filler, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler"}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	chunks := uint64(0)
	for ; ; chunks++ {
		if _, err := e.js.Publish(ctx, "filler", chunk); err != nil {
			if !natsFull(err) {
				t.Fatalf("filling the store: %v", err)
			}
			break
		}
	}
	// Room for a few hundred events: the pass runs out of it midway.
	if err := filler.Purge(ctx, jetstream.WithPurgeKeep(chunks-4)); err != nil {
		t.Fatal(err)
	}
	before := len(e.events())
	e.sim.Update("persons", 1500)
	e.sim.Insert("persons", 500, 0)
	e.sim.Delete("persons", 100, -1)
	for range 2 {
		_, err := e.p.Poll(ctx, "persons")
		if err == nil || !strings.Contains(err.Error(), "NATS has no room to store more") {
			t.Fatalf("a pass with JetStream full: %v; want it to say NATS has no room", err)
		}
	}
	if stored := len(e.events()) - before; stored == 0 {
		t.Fatal("the pass stored no event before the room ran out; the test meant it to fail midway")
	}
	if strings.Contains(e.logs.String(), e.sim.Key("persons")) {
		t.Fatal("the API key is in the logs")
	}

	if err := filler.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	var last error
	t.Cleanup(func() {
		if t.Failed() && last != nil {
			t.Logf("the last pass after room was made: %v", last)
		}
	})
	testenv.WaitFor(t, "a pass once room is made", func() bool {
		_, last = e.p.Poll(ctx, "persons")
		return last == nil
	})
	// The pass that succeeded may have been the recovery; the next
	// consistent pass publishes what is left.
	e.poll("persons")
	e.poll("persons")
	if d := testenv.Diff(testenv.Chains(t, e.events())["persons"], e.want("persons")); d != "" {
		t.Errorf("the stream folded differs from the report: %s", d)
	}
	e.assertKV("persons")
}
