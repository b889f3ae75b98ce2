package sinktest

import (
	"context"
	"strconv"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// RowReader reads a report's table back, values in their event form under
// their column keys whatever the columns are named, with the report's
// position: what the built-in stores offer (ReadRows).
type RowReader interface {
	ReadRows(ctx context.Context, report string) ([]event.Row, uint64, error)
}

// ReadsConsistent applies n batches to s, batch i adding row i of a people
// table at position i, while it reads the table through r, a reader of the
// same database (a read-only store opened on it): every read must hold the
// rows of the position read with them, never part of a batch.
func ReadsConsistent(t *testing.T, s consumer.Store, r RowReader, n int) {
	t.Helper()
	ctx := context.Background()
	table := &consumer.Table{Report: "people", Key: []string{"id"}, Columns: []event.Column{{Key: "id", Type: event.TypeNumber}}}
	if err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeTable, Table: table}}, Positions: map[string]uint64{"people": 0}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			id := strconv.Itoa(i)
			err := s.Apply(ctx, &consumer.Batch{Changes: []consumer.Change{{Kind: consumer.ChangeUpsert, Table: table, Token: id, Row: event.Row{"id": event.NumberValue(id)}}}, Positions: map[string]uint64{"people": uint64(i)}})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		rows, pos, err := r.ReadRows(ctx, "people")
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(rows)) != pos {
			t.Fatalf("read %d rows at position %d", len(rows), pos)
		}
		if pos == uint64(n) {
			t.Logf("%d reads", reads)
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
