package producer

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestRecoveryLeavesNoConsumer: loading the snapshot and applying the
// stream's tail leave no consumer on the event stream or on any bucket.
func TestRecoveryLeavesNoConsumer(t *testing.T) {
	big := func(rc *ReportConfig) { rc.PageSize = 1000 }
	e := newPolledPersons(t, 2500, big)
	// A restart whose recovery reads more than one batch from both: every
	// event since the start, and a snapshot of 2,500 rows.
	ctx := context.Background()
	st, rev := e.state("persons")
	st.Checkpoint = 0
	b, _ := json.Marshal(st)
	if _, err := e.stateBucket().Update(ctx, "persons", b, rev); err != nil {
		t.Fatal(err)
	}
	e.open(e.reportConfig("persons", big))
	e.assertKV("persons")

	names := e.js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if len(streams) < 3 {
		t.Fatalf("streams %v: want the events, the state and the snapshot", streams)
	}
	for _, name := range streams {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for c := range s.ListConsumers(ctx).Info() {
			t.Errorf("stream %s keeps consumer %s after recovery (created %s)", name, c.Name, c.Created.Format(time.RFC3339Nano))
		}
	}
}
