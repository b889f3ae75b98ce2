package sinktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// PublishPersons creates the COMET stream and the producer's state record,
// publishes a schema event and n created events for simulated persons (as
// the producer would), and returns the rows, the columns and the last
// sequence. Sink benchmarks and tests start from it.
func PublishPersons(tb testing.TB, js jetstream.JetStream, n int) ([]event.Row, []event.Column, uint64) {
	tb.Helper()
	rows, cols, schema := persons(tb, n)
	ctx := context.Background()
	createStream(tb, js, cols)
	// The key, for the sink; checkpoint 0: everything is in the stream.
	putState(tb, js, "persons", event.ReportState{Key: []string{"personId"}, Columns: cols})
	ajs, _ := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(publishWindow))
	for i, r := range rows {
		tok := r["personId"].Raw
		data := (&event.RowEvent{ID: event.ID("persons", fmt.Sprint(i)), Source: "comet://bench/persons", Token: tok, Time: time.Now(), Report: "persons",
			Op: event.OpCreated, Sync: "s", Key: []byte(`{"personId":` + tok + `}`), After: schema.AppendRow(nil, values(cols, r))}).Append(nil)
		publishAsync(tb, ajs, i, "comet.persons.row.created."+tok, data)
	}
	waitPublished(tb, ajs)
	s, _ := js.Stream(ctx, "COMET")
	info, _ := s.Info(ctx)
	return rows, cols, info.State.LastSeq
}

// PublishChanges publishes, for rows that PublishPersons published, the
// events of a pass that changes them all: each row updated (its club
// changed), and every tenth then deleted. It returns the events published
// and the last sequence.
func PublishChanges(tb testing.TB, js jetstream.JetStream, rows []event.Row, cols []event.Column) (int, uint64) {
	tb.Helper()
	schema, err := event.NewSchema(cols)
	if err != nil {
		tb.Fatal(err)
	}
	ajs, _ := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(publishWindow))
	n := 0
	for i, r := range rows {
		tok := r["personId"].Raw
		before := schema.AppendRow(nil, values(cols, r))
		moved := maps.Clone(r)
		moved["club"] = event.TextValue(fmt.Sprint("Moved ", i))
		after := schema.AppendRow(nil, values(cols, moved))
		key := []byte(`{"personId":` + tok + `}`)
		ev := &event.RowEvent{ID: event.ID("persons", fmt.Sprint("u", i)), Source: "comet://bench/persons", Token: tok, Time: time.Now(), Report: "persons",
			Op: event.OpUpdated, Sync: "s2", Key: key, Before: before, After: after, Changed: []string{"club"}}
		publishAsync(tb, ajs, n, "comet.persons.row.updated."+tok, ev.Append(nil))
		n++
		if i%10 == 0 {
			ev := &event.RowEvent{ID: event.ID("persons", fmt.Sprint("d", i)), Source: "comet://bench/persons", Token: tok, Time: time.Now(), Report: "persons",
				Op: event.OpDeleted, Sync: "s2", Key: key, Before: after}
			publishAsync(tb, ajs, n, "comet.persons.row.deleted."+tok, ev.Append(nil))
			n++
		}
	}
	waitPublished(tb, ajs)
	s, _ := js.Stream(context.Background(), "COMET")
	info, _ := s.Info(context.Background())
	return n, info.State.LastSeq
}

// PublishSnapshot leaves NATS as a producer leaves it after the first pass
// over n simulated persons, with the stream's history of row events gone:
// the COMET stream holding only the schema event, the snapshot bucket
// holding the n rows, and the state record's checkpoint at the end of the
// stream. A sink on a new database bootstraps all n rows from the bucket
// and then has no event to apply.
func PublishSnapshot(tb testing.TB, js jetstream.JetStream, n int) {
	tb.Helper()
	rows, cols, schema := persons(tb, n)
	ctx := context.Background()
	checkpoint := createStream(tb, js, cols)
	bucket := event.BucketName(event.DefaultPrefix, "persons")
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1}); err != nil {
		tb.Fatal(err)
	}
	ajs, _ := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(publishWindow))
	prefix := event.KVSubjectPrefix(bucket)
	for i, r := range rows {
		publishAsync(tb, ajs, i, prefix+r["personId"].Raw, schema.AppendRow(nil, values(cols, r)))
	}
	waitPublished(tb, ajs)
	putState(tb, js, "persons", event.ReportState{Checkpoint: checkpoint, Key: []string{"personId"}, Columns: cols})
}

// putState writes a report's state record as the producer does, creating
// the state bucket if need be.
func putState(tb testing.TB, js jetstream.JetStream, report string, state event.ReportState) {
	tb.Helper()
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName(event.DefaultPrefix)})
	if err != nil {
		tb.Fatal(err)
	}
	rec, err := json.Marshal(state)
	if err == nil {
		_, err = kv.Put(ctx, report, rec)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// Persons returns the rows and the columns PublishSnapshot publishes for
// n persons, made again: a benchmark can let them go while it measures the
// sink and have them back for its baseline.
func Persons(tb testing.TB, n int) ([]event.Row, []event.Column) {
	tb.Helper()
	rows, cols, _ := persons(tb, n)
	return rows, cols
}

// persons returns n simulated persons, their columns and their schema.
func persons(tb testing.TB, n int) ([]event.Row, []event.Column, *event.Schema) {
	tb.Helper()
	sim, err := simulator.New(simulator.Config{Seed: uint64(n), Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: n}}})
	if err != nil {
		tb.Fatal(err)
	}
	cols := sim.Columns("persons")
	schema, err := event.NewSchema(cols)
	if err != nil {
		tb.Fatal(err)
	}
	return sim.Rows("persons"), cols, schema
}

// createStream creates the COMET stream with the persons' schema event in
// it, and returns that event's sequence.
func createStream(tb testing.TB, js jetstream.JetStream, cols []event.Column) uint64 {
	tb.Helper()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		tb.Fatal(err)
	}
	sc, _ := event.Encode(event.ID("persons", string(event.KindSchema)), "comet://bench/persons", event.TypeSchema, time.Now(), event.SchemaChange{Report: "persons", Columns: cols, Undeclared: []string{}})
	ack, err := js.Publish(ctx, "comet.persons.report.schema", sc)
	if err != nil {
		tb.Fatal(err)
	}
	return ack.Sequence
}

func values(cols []event.Column, r event.Row) []event.Value {
	vals := make([]event.Value, len(cols))
	for j, c := range cols {
		vals[j] = r[c.Key]
	}
	return vals
}

// publishWindow bounds the publishes awaiting their acknowledgement.
const publishWindow = 4096

// publishAsync publishes the i-th message, waiting for the acknowledgements
// of a whole window before starting the next: a busy machine slows the
// server down, and a publisher that has to wait too long fails.
func publishAsync(tb testing.TB, js jetstream.JetStream, i int, subject string, data []byte) {
	tb.Helper()
	if i > 0 && i%publishWindow == 0 {
		waitPublished(tb, js)
	}
	if _, err := js.PublishAsync(subject, data); err != nil {
		tb.Fatal(err)
	}
}

func waitPublished(tb testing.TB, js jetstream.JetStream) {
	tb.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("publishes not acknowledged")
	}
}

// ReadSnapshot reads every message of the bucket PublishSnapshot fills, as
// a bootstrap reads it (an ordered consumer of the bucket's stream, from
// its start) but doing nothing with them, and returns how long it took:
// the floor under any bootstrap, for a benchmark to set beside its own.
func ReadSnapshot(tb testing.TB, js jetstream.JetStream) time.Duration {
	tb.Helper()
	ctx := context.Background()
	stream := event.KVStream(event.BucketName(event.DefaultPrefix, "persons"))
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		tb.Fatal(err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		tb.Fatal(err)
	}
	defer msgs.Stop()
	for left := cons.CachedInfo().NumPending; left > 0; left-- {
		if _, err := msgs.Next(jetstream.NextMaxWait(10 * time.Second)); err != nil {
			tb.Fatalf("read %s: %v", stream, err)
		}
	}
	return time.Since(start)
}

// Bootstrap runs Materialize on an empty store until it follows the
// stream, and returns how long that took: the bootstrap of every report
// the producer's state names.
func Bootstrap(tb testing.TB, js jetstream.JetStream, store consumer.Store, durable string, batch int) time.Duration {
	tb.Helper()
	return timeMaterialize(tb, "followed the stream", func(done func()) consumer.MaterializeConfig {
		return consumer.MaterializeConfig{JetStream: js, Durable: durable, Store: store, BatchSize: batch, OnReady: done}
	})
}

// ApplyUntil runs Materialize on store until it has applied the event at
// sequence last, batch events to a transaction (0: Materialize's default),
// and returns how long that took.
func ApplyUntil(tb testing.TB, js jetstream.JetStream, store consumer.Store, durable string, batch int, last uint64) time.Duration {
	tb.Helper()
	return timeMaterialize(tb, "applied the last event", func(done func()) consumer.MaterializeConfig {
		return consumer.MaterializeConfig{
			JetStream: js, Durable: durable, Store: store, BatchSize: batch,
			OnApplied: func(msgs []*consumer.Message) {
				if msgs[len(msgs)-1].Seq == last {
					done()
				}
			},
		}
	})
}

// timeMaterialize runs Materialize with the configuration cfg makes until
// one of its callbacks calls done, and returns how long that took; what
// says what done means, for the failure of a Materialize that ended first.
func timeMaterialize(tb testing.TB, what string, cfg func(done func()) consumer.MaterializeConfig) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var end time.Time
	c := cfg(func() { end = time.Now(); cancel() })
	start := time.Now()
	if err := consumer.Materialize(ctx, c); err != nil && !errors.Is(err, context.Canceled) {
		tb.Fatal(err)
	}
	if end.IsZero() {
		tb.Fatalf("Materialize ended before it %s", what)
	}
	return end.Sub(start)
}

// ReportRates reports a sink benchmark's rates beside its baseline's: the
// rows (or events) a second of the sink, as sinkUnit, and of the baseline,
// as baseUnit, over their times, and the ratio of the baseline's time to
// the sink's.
func ReportRates(b *testing.B, rows float64, sink, base time.Duration, sinkUnit, baseUnit string) {
	b.ReportMetric(rows/sink.Seconds(), sinkUnit)
	b.ReportMetric(rows/base.Seconds(), baseUnit)
	b.ReportMetric(base.Seconds()/sink.Seconds(), "ratio")
}
