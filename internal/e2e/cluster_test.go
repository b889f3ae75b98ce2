package e2e

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/consumer/sqlite"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
	"github.com/cometstream/cometstream/producer"
)

// TestClusterStreamLeaderLoss runs the producer on a three-node cluster
// with the stream and buckets at three replicas, shuts the stream's leader
// down in the middle of a pass, and checks that the pass completes or is
// retried cleanly: no acknowledged event is lost, none is repeated, the
// snapshot equals the report, and a sink on the surviving nodes converges.
func TestClusterStreamLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster")
	}
	servers := testenv.StartCluster(t, 3)
	nc, js := testenv.Connect(t, testenv.ClusterURL(servers))
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 17, Latency: 20 * time.Millisecond, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: 300}}})
	p, err := producer.New(producer.Config{
		Conn: nc, Stream: "COMET", Prefix: "comet", Replicas: 3, AckTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Reports: []producer.ReportConfig{{Name: "persons", Key: []string{"personId"}, Interval: time.Hour, PageSize: 20, MaxDeleteFraction: 0.5,
			Comet: comet.Config{BaseURL: base, APIKey: sim.Key("persons"), Limiter: comet.NewLimiter(1000)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	openDeadline := time.Now().Add(30 * time.Second)
	for err = p.Open(ctx); err != nil; err = p.Open(ctx) {
		if time.Now().After(openDeadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := p.Poll(ctx, "persons"); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, "COMET")
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream is not R3: %+v %v", info.Cluster, err)
	}
	var leader *server.Server
	for _, srv := range servers {
		if srv.Name() == info.Cluster.Leader {
			leader = srv
		}
	}
	if leader == nil {
		t.Fatalf("no server is the stream leader %q", info.Cluster.Leader)
	}

	sim.Update("persons", 20)
	sim.Insert("persons", 5, 0)
	sim.Delete("persons", 3, -1)
	var once sync.Once
	sim.OnPage(func(_ string, page int) {
		if page == 5 {
			once.Do(func() { go leader.Shutdown() })
		}
	})
	_, err = p.Poll(ctx, "persons")
	t.Logf("the pass during the leader's shutdown: %v", err)
	sim.OnPage(nil)
	ok := 0
	for i := 0; ok < 3 && i < 60; i++ {
		if _, err := p.Poll(ctx, "persons"); err != nil {
			ok = 0
			t.Logf("pass after the shutdown: %v", err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		ok++
	}
	if ok < 3 {
		t.Fatal("passes never succeeded again after the leader was lost")
	}
	// The passes need the stream's new leader; reading the stream back
	// creates consumers, which needs the cluster's meta leader, which the
	// shutdown may also have taken.
	testenv.WaitFor(t, "the cluster's meta leader and the stream's leader", func() bool {
		if _, err := js.AccountInfo(ctx); err != nil {
			return false
		}
		_, err := js.Stream(ctx, "COMET")
		return err == nil
	})
	want := testenv.Want(sim, "persons")
	if d := testenv.Diff(testenv.Bucket(t, js, event.BucketName("comet", "persons")), want); d != "" {
		t.Errorf("the snapshot differs from the report:\n%s", d)
	}
	final := testenv.Chains(t, testenv.Events(t, js, "COMET", 0))
	if d := testenv.Diff(final["persons"], want); d != "" {
		t.Errorf("the stream does not add up to the report:\n%s", d)
	}

	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sink.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- consumer.Materialize(mctx, consumer.MaterializeConfig{JetStream: js, Durable: "cluster_sink", Store: store})
	}()
	for mctx.Err() == nil {
		var n int
		store.DB().QueryRow(`SELECT count(*) FROM persons`).Scan(&n)
		if n == sim.Len("persons") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	rows := readRows(t, store, "persons")
	if d := sinktest.Diff(sim.Columns("persons"), []string{"personId"}, sim.Rows("persons"), rows); d != "" {
		t.Errorf("the sink on the surviving nodes differs: %s", d)
	}
}

func readRows(t *testing.T, s *sqlite.Store, table string) []map[string]any {
	rows, err := s.DB().Query(`SELECT * FROM "` + table + `"`)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.SQLRows(t, rows)
}
