package sinktest

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

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
