package sqlite

import (
	"context"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestRecreatedStreamRebuilds points a database filled from one stream at a
// brand-new one (sequences start over): its positions mean nothing there, so
// the sink must rebuild instead of skipping the new stream's events.
func TestRecreatedStreamRebuilds(t *testing.T) {
	store, _ := tempStore(t)
	for i, n := range []int{7, 3} {
		srv := testenv.StartNATS(t, t.TempDir())
		_, js := testenv.Connect(t, srv.ClientURL())
		rows, _, last := sinktest.PublishPersons(t, js, n)
		ctx, cancel := context.WithCancel(context.Background())
		err := consumer.Materialize(ctx, consumer.MaterializeConfig{JetStream: js, Durable: "d", Store: store,
			OnApplied: func(msgs []*consumer.Message) {
				if msgs[len(msgs)-1].Seq == last {
					cancel()
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		var count int
		store.DB().QueryRow(`SELECT count(*) FROM persons`).Scan(&count)
		if count != len(rows) {
			t.Fatalf("stream %d: %d rows, want %d", i, count, len(rows))
		}
		srv.Shutdown()
	}
}
