package sinktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

// storeBehindWhileRunning: a running sink falls behind the stream's
// retention (its database stalls while rows change, and the stream drops
// the events it had not read). It must notice, and end equal to the report
// rather than skip what it never saw.
//
// With batches of one event the range dropped starts a batch; with batches
// of 25 it may fall inside one, between two events that arrived together.
func storeBehindWhileRunning(t *testing.T, st StoreTarget) {
	for _, batch := range []int{1, 25} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) { behindWhileRunning(t, st, batch) })
	}
}

func behindWhileRunning(t *testing.T, st StoreTarget, batch int) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 80})
	w.SettleAll()
	s := st.Open(t, fmt.Sprint("behind", batch))
	g := &gatedStore{Store: s, blocked: make(chan struct{})}
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "behind", Store: g, BatchSize: batch,
	})
	waitStore(t, w, st, s)

	// The database stalls on the next batch; meanwhile rows change eight
	// times over and 5 go, and the stream keeps only its last two events:
	// far more than a batch and what the client and the reader hold ahead
	// (a few batches) are dropped.
	release := g.hold()
	for range 8 {
		w.Update("persons", 60)
		w.Poll("persons")
	}
	w.Delete("persons", 5)
	w.SettleAll()
	<-g.blocked
	trimStream(t, w, 2)
	release()
	waitStore(t, w, st, s)
	testenv.WaitFor(t, "the sink's warning that the stream dropped events it had not applied", func() bool {
		return strings.Contains(logs.String(), "dropped events before this sink applied them")
	})
}

// gatedStore is a store whose Apply can be made to wait, as a stalled
// database does. It is no BulkLoader: bootstraps go through Apply too.
type gatedStore struct {
	consumer.Store
	mu      sync.Mutex
	gate    chan struct{} // closed to let Apply through; nil: open
	blocked chan struct{} // closed when an Apply first waits at the gate
	once    sync.Once
}

// hold makes the next Apply wait until the returned release is called.
func (g *gatedStore) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate := make(chan struct{})
	g.gate = gate
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

func (g *gatedStore) Apply(ctx context.Context, b *consumer.Batch) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.once.Do(func() { close(g.blocked) })
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Apply(ctx, b)
}

// storeNoRestartLoop: a report the producer keeps a state record for but
// has no snapshot of (COMET refused its key from the first pass), in a
// stream whose retention dropped its first events, is followed from the
// stream's start and does not send the sink round a loop of restarts.
func storeNoRestartLoop(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30})
	w.SettleAll()
	ctx := context.Background()
	state, err := w.JetStream().KeyValue(ctx, event.StateBucketName(event.DefaultPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Put(ctx, "ghost", []byte(`{"checkpoint":0,"key":["id"]}`)); err != nil {
		t.Fatal(err)
	}
	w.Update("persons", 5)
	w.SettleAll()
	trimStream(t, w, 3)
	s := st.Open(t, "ghost")
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "ghost", Store: s,
	})
	waitStore(t, w, st, s)
	// One pass more, seen by the sink: it has read past the dropped range.
	w.Poll("persons")
	stream, err := w.JetStream().Stream(ctx, event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, event.ReportSubject(event.DefaultPrefix, "persons", event.KindSynced))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the sink at the last pass's synced event", func() bool {
		pos, err := s.Positions(ctx)
		return err == nil && pos["persons"] >= last.Sequence
	})
	if n := strings.Count(logs.String(), "starting again from the store's positions"); n > 0 {
		t.Errorf("the sink started again %d times:\n%s", n, logs.String())
	}
}

// trimStream keeps only the stream's last n events.
func trimStream(t *testing.T, w *cometstreamtest.World, n int64) {
	t.Helper()
	ctx := context.Background()
	stream, err := w.JetStream().Stream(ctx, event.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgs = n
	if _, err := w.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// runLogged runs Materialize with cfg (its JetStream the world's) in the
// background until the test ends, and returns its logs.
func runLogged(t *testing.T, w *cometstreamtest.World, cfg consumer.MaterializeConfig) *testenv.Buffer {
	logs := &testenv.Buffer{}
	cfg.JetStream, cfg.Logger = w.JetStream(), slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Materialize(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Materialize: %v", err)
		}
	})
	return logs
}

// storeFailing: a store that refuses batches for a while. The sink says
// so as it goes (OnFailing, counting, and cometstream_sink_batch_failures),
// loses nothing meanwhile, and once the store takes batches again says
// that too and converges.
func storeFailing(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 40})
	w.SettleAll()
	s := st.Open(t, "failing")
	f := &failingStore{Store: s}
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var counts []int
	applied := make(chan struct{}, 1)
	logs := runLogged(t, w, consumer.MaterializeConfig{
		Durable: "failing", Store: f, Registerer: reg, Backoff: []time.Duration{20 * time.Millisecond},
		OnFailing: func(err error, n int) {
			mu.Lock()
			counts = append(counts, n)
			mu.Unlock()
		},
		OnApplied: func([]*consumer.Message) {
			select {
			case applied <- struct{}{}:
			default:
			}
		},
	})
	waitStore(t, w, st, s)
	f.refuse(true)
	w.Update("persons", 10)
	w.Poll("persons")
	failures := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "cometstream_sink_batch_failures" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	testenv.WaitFor(t, "the sink to fail a batch five times", func() bool { return failures() >= 5 })
	if !strings.Contains(logs.String(), "the sink cannot apply a batch") {
		t.Errorf("the log does not say the sink is failing:\n%s", logs)
	}
	for len(applied) > 0 {
		<-applied
	}
	f.refuse(false)
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("the sink did not apply a batch once the store took them again")
	}
	waitStore(t, w, st, s)
	if got := failures(); got != 0 {
		t.Errorf("cometstream_sink_batch_failures is %v once batches go in again, want 0", got)
	}
	if !strings.Contains(logs.String(), "the sink applies batches again") {
		t.Errorf("the log does not say the sink applies batches again:\n%s", logs)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("OnFailing counted %v, want 1, 2, 3, ...", counts)
		}
	}
	if len(counts) < 5 {
		t.Errorf("OnFailing was called %d times, want at least 5", len(counts))
	}
}

// failingStore refuses every Apply while refusing.
type failingStore struct {
	consumer.Store
	refusing atomic.Bool
}

func (f *failingStore) refuse(on bool) { f.refusing.Store(on) }

func (f *failingStore) Apply(ctx context.Context, b *consumer.Batch) error {
	if f.refusing.Load() {
		return errors.New("the database refuses the batch")
	}
	return f.Store.Apply(ctx, b)
}

// pendingDelete publishes the delete event of a persons row as a pass of the
// producer does (asyncEvents): the event is in the stream, its snapshot write
// comes at the pass's flush. It returns the event's sequence.
func pendingDelete(t *testing.T, w *cometstreamtest.World, kv jetstream.KeyValue, tok string) uint64 {
	t.Helper()
	ctx := context.Background()
	e, err := kv.Get(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	key := []byte(`{`)
	for i, k := range w.Key("persons") {
		if i > 0 {
			key = append(key, ',')
		}
		key = append(key, `"`+k+`":`...)
		key = append(key, raw[k]...)
	}
	key = append(key, '}')
	id := event.ID("persons", "review-delete", tok)
	data := (&event.RowEvent{ID: id, Source: "comet://review/persons", Token: tok, Time: time.Now(), Report: "persons",
		Op: event.OpDeleted, Sync: "review", Key: key, Before: e.Value()}).Append(nil)
	ack, err := w.JetStream().Publish(ctx, event.RowSubject(event.DefaultPrefix, "persons", event.OpDeleted, tok), data, jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// personsBucket returns the snapshot bucket of the persons report.
func personsBucket(t *testing.T, w *cometstreamtest.World) jetstream.KeyValue {
	t.Helper()
	kv, err := w.JetStream().KeyValue(context.Background(), event.BucketName(event.DefaultPrefix, "persons"))
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func syncedEvent(t *testing.T, w *cometstreamtest.World, report string) uint64 {
	t.Helper()
	id := event.ID(report, "review-synced", time.Now().String())
	data, err := event.Encode(id, "comet://review/"+report, event.TypeSynced, time.Now(), event.Synced{Report: report, Sync: "review", Consistent: true})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := w.JetStream().Publish(context.Background(), event.ReportSubject(event.DefaultPrefix, report, event.KindSynced), data, jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func tokens(t *testing.T, w *cometstreamtest.World, st StoreTarget, s consumer.Store) []string {
	var out []string
	for _, r := range st.Rows(t, s, "persons") {
		out = append(out, w.Token("persons", r))
	}
	slices.Sort(out)
	return out
}

// The tests below model a producer's pass under way: its events are in the
// stream, their snapshot writes come at the pass's flush, and its state
// record (the checkpoint) after that. A retention that drops such events
// before the sink applies them must not lose them: the snapshot, read
// before the flush, does not hold them either.

// passUnderWayLoad: the sink bootstraps persons while a pass of it is under
// way (two deletes in the stream, their snapshot writes still to come); the
// stream drops the deletes during the load, and the pass flushes.
func passUnderWayLoad(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30})
	w.SettleAll()
	ctx := context.Background()
	kv := personsBucket(t, w)
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	a, b := keys[0], keys[1]
	pendingDelete(t, w, kv, a)
	seqB := pendingDelete(t, w, kv, b)

	s := st.Open(t, "lag")
	var once sync.Once
	runLogged(t, w, consumer.MaterializeConfig{
		Durable: "lag", Store: s,
		OnBootstrap: func(p consumer.BootstrapProgress) {
			if p.Report != "persons" || p.Done || p.Loaded == 0 {
				return
			}
			once.Do(func() {
				// The bucket has been read. The stream's retention
				// drops the two deletes (it keeps the last event), and
				// the producer's pass flushes its snapshot writes.
				trimStream(t, w, 1)
				if err := kv.Delete(ctx, a); err != nil {
					t.Error(err)
				}
				if err := kv.Delete(ctx, b); err != nil {
					t.Error(err)
				}
				endPass(t, w, "persons", seqB)
			})
		},
	})
	testenv.WaitFor(t, "the sink at the second delete", func() bool {
		pos, err := s.Positions(ctx)
		return err == nil && pos["persons"] >= seqB
	})
	testenv.WaitFor(t, "row "+a+", deleted by an event the stream dropped before the sink applied it, gone from the store", func() bool {
		return !slices.Contains(tokens(t, w, st, s), a)
	})
}

// passUnderWayStopped: a pass of persons is under way (two deletes in the
// stream, checkpoint not saved yet) when the stream drops all of persons'
// events; a sink started then finds none of its events left and the
// checkpoint at its position, which does not mean it missed nothing.
func passUnderWayStopped(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t,
		cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30},
		cometstreamtest.Report{Name: "matches", Kind: cometstreamtest.Matches, Rows: 10})
	w.SettleAll()
	ctx := context.Background()
	s := st.Open(t, "ckpt")
	m := materialize(t, w, s)
	waitStore(t, w, st, s)
	m.stop()

	kv := personsBucket(t, w)
	got := tokens(t, w, st, s)
	a, b := got[0], got[1]
	pendingDelete(t, w, kv, a)
	pendingDelete(t, w, kv, b)
	w.Poll("matches")
	trimStream(t, w, 1) // only matches' synced event is left

	runLogged(t, w, consumer.MaterializeConfig{
		Durable: "ckpt", Store: s,
	})
	stream, _ := w.JetStream().Stream(ctx, event.DefaultStream)
	last := stream.CachedInfo().State.LastSeq
	testenv.WaitFor(t, "the sink at matches' last event", func() bool {
		pos, err := s.Positions(ctx)
		return err == nil && pos["matches"] >= last
	})
	// The pass ends: its snapshot writes, then its synced event.
	if err := kv.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	seq := syncedEvent(t, w, "persons")
	endPass(t, w, "persons", seq)
	testenv.WaitFor(t, "the sink at persons' synced event", func() bool {
		pos, err := s.Positions(ctx)
		return err == nil && pos["persons"] >= seq
	})
	testenv.WaitFor(t, "rows "+a+" and "+b+", deleted by events the stream dropped before the sink applied them, gone from the store", func() bool {
		now := tokens(t, w, st, s)
		return !slices.Contains(now, a) && !slices.Contains(now, b)
	})
}

// passUnderWayNewStore: a new store bootstraps persons after the stream
// dropped two deletes of a pass still under way (their snapshot writes to
// come at its flush): the bucket it read does not hold them.
func passUnderWayNewStore(t *testing.T, st StoreTarget) {
	w := cometstreamtest.New(t, cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30})
	w.SettleAll()
	ctx := context.Background()
	kv := personsBucket(t, w)
	a, b := "100000", "100001"
	pendingDelete(t, w, kv, a)
	seqB := pendingDelete(t, w, kv, b)
	trimStream(t, w, 1) // the second delete is the stream's first event
	s := st.Open(t, "past")
	runLogged(t, w, consumer.MaterializeConfig{
		Durable: "past", Store: s,
		OnReady: func() {
			// The pass flushes its snapshot writes.
			_ = kv.Delete(ctx, a)
			_ = kv.Delete(ctx, b)
			endPass(t, w, "persons", seqB)
		},
	})
	testenv.WaitFor(t, "row "+a+", deleted by a dropped event, gone from the store", func() bool {
		rows := st.Rows(t, s, "persons")
		return len(rows) > 0 && !slices.Contains(tokens(t, w, st, s), a)
	})
}

// endPass writes a report's state record as a pass does once its snapshot
// writes are done: the checkpoint at its last event, the time now.
func endPass(t *testing.T, w *cometstreamtest.World, report string, last uint64) {
	t.Helper()
	ctx := context.Background()
	kv, err := w.JetStream().KeyValue(ctx, event.StateBucketName(event.DefaultPrefix))
	if err != nil {
		t.Error(err)
		return
	}
	e, err := kv.Get(ctx, report)
	if err != nil {
		t.Error(err)
		return
	}
	var st event.ReportState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.Error(err)
		return
	}
	st.Checkpoint, st.Updated = last, time.Now().UTC()
	b, _ := json.Marshal(st)
	if _, err := kv.Put(ctx, report, b); err != nil {
		t.Error(err)
	}
}
