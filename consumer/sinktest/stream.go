package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// PublishPersons creates the COMET stream and the producer's state record,
// publishes a schema event and n created events for simulated persons (as
// the producer would), and returns the rows, the columns and the last
// sequence. Sink benchmarks and tests start from it.
func PublishPersons(tb testing.TB, js jetstream.JetStream, n int) ([]event.Row, []event.Column, uint64) {
	tb.Helper()
	sim, err := simulator.New(simulator.Config{Seed: uint64(n), Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: n}}})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}}); err != nil {
		tb.Fatal(err)
	}
	cols := sim.Columns("persons")
	schema, _ := event.NewSchema(cols)
	sc, _ := event.Encode(event.ID("persons", string(event.KindSchema)), "comet://bench/persons", event.TypeSchema, time.Now(), event.SchemaChange{Report: "persons", Columns: cols, Undeclared: []string{}})
	if _, err := js.Publish(ctx, "comet.persons.report.schema", sc); err != nil {
		tb.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.StateBucketName("comet")})
	if err != nil {
		tb.Fatal(err)
	}
	st, _ := json.Marshal(event.ReportState{Key: []string{"personId"}, Columns: cols})
	kv.Put(ctx, "persons", st) // the key, for the sink; checkpoint 0: everything is in the stream
	rows := sim.Rows("persons")
	ajs, _ := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(4096))
	for i, r := range rows {
		vals := make([]event.Value, len(cols))
		for j, c := range cols {
			vals[j] = r[c.Key]
		}
		tok := r["personId"].Raw
		data := (&event.RowEvent{ID: event.ID("persons", fmt.Sprint(i)), Source: "comet://bench/persons", Token: tok, Time: time.Now(), Report: "persons",
			Op: event.OpCreated, Sync: "s", Key: []byte(`{"personId":` + tok + `}`), After: schema.AppendRow(nil, vals)}).Append(nil)
		if _, err := ajs.PublishAsync("comet.persons.row.created."+tok, data); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-ajs.PublishAsyncComplete():
	case <-time.After(time.Minute):
		tb.Fatal("publishes not acknowledged")
	}
	s, _ := js.Stream(ctx, "COMET")
	info, _ := s.Info(ctx)
	return rows, cols, info.State.LastSeq
}
