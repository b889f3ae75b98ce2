package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

const benchEvents = 100_000

// BenchmarkSinkApply100k measures how fast the SQLite sink applies 100k
// created events from the stream (decoding, transactions with positions,
// acknowledgements), against its baseline in the same run: a plain batched
// INSERT ... ON CONFLICT of the same rows, 1000 to a transaction, with one
// prepared statement.
//
//	go test -run XXX -bench SinkApply100k -benchtime 1x ./consumer/sqlite
func BenchmarkSinkApply100k(b *testing.B) {
	srv := testenv.StartNATS(b, b.TempDir())
	_, js := testenv.Connect(b, srv.ClientURL())
	rows, cols, last := sinktest.PublishPersons(b, js, benchEvents)
	var sinkTime, baseTime time.Duration
	for i := 0; b.Loop(); i++ {
		baseTime += baseline(b, filepath.Join(b.TempDir(), "base.db"), rows, cols)
		store, err := Open(context.Background(), filepath.Join(b.TempDir(), "sink.db"))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		var end time.Time
		done := make(chan error, 1)
		go func() {
			done <- consumer.Materialize(ctx, consumer.MaterializeConfig{
				JetStream: js, Durable: fmt.Sprint("bench", i), Store: store,
				OnApplied: func(msgs []*consumer.Message) {
					if msgs[len(msgs)-1].Seq == last {
						end = time.Now()
						cancel()
					}
				},
			})
		}()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		sinkTime += end.Sub(start)
		var n int
		store.DB().QueryRow(`SELECT count(*) FROM persons`).Scan(&n)
		if n != benchEvents {
			b.Fatalf("%d rows in the sink, want %d", n, benchEvents)
		}
		store.Close()
	}
	total := float64(benchEvents * b.N)
	b.ReportMetric(total/sinkTime.Seconds(), "events/s")
	b.ReportMetric(total/baseTime.Seconds(), "baseline_rows/s")
	b.ReportMetric(baseTime.Seconds()/sinkTime.Seconds(), "ratio")
}

// baseline inserts the rows with plain batched upserts.
func baseline(b *testing.B, path string, rows []event.Row, cols []event.Column) time.Duration {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var defs, names, marks, sets []string
	for _, c := range cols {
		defs = append(defs, Ident(c.Key)+" "+sqlType(c.Type))
		names = append(names, Ident(c.Key))
		marks = append(marks, "?")
		sets = append(sets, Ident(c.Key)+" = excluded."+Ident(c.Key))
	}
	if _, err := db.Exec(`CREATE TABLE persons (` + strings.Join(defs, ", ") + `, PRIMARY KEY ("personId"))`); err != nil {
		b.Fatal(err)
	}
	q := `INSERT INTO persons (` + strings.Join(names, ", ") + `) VALUES (` + strings.Join(marks, ", ") + `) ON CONFLICT ("personId") DO UPDATE SET ` + strings.Join(sets, ", ")
	start := time.Now()
	for i := 0; i < len(rows); i += 1000 {
		tx, _ := db.Begin()
		st, err := tx.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows[i:min(i+1000, len(rows))] {
			args := make([]any, len(cols))
			for j, c := range cols {
				args[j] = Arg(r[c.Key])
			}
			if _, err := st.Exec(args...); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkSinkLatency measures the time from publishing an event to its
// row being committed in SQLite, at a steady 500 events a second.
//
//	go test -run XXX -bench SinkLatency -benchtime 1x ./consumer/sqlite
func BenchmarkSinkLatency(b *testing.B) {
	srv := testenv.StartNATS(b, b.TempDir())
	_, js := testenv.Connect(b, srv.ClientURL())
	_, cols, _ := sinktest.PublishPersons(b, js, 10)
	schema, _ := event.NewSchema(cols)
	store, err := Open(context.Background(), filepath.Join(b.TempDir(), "lat.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- consumer.Materialize(ctx, consumer.MaterializeConfig{
			JetStream: js, Durable: "latency", Store: store,
			OnReady: func() { close(ready) },
			OnApplied: func(msgs []*consumer.Message) {
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				for _, m := range msgs {
					if t, ok := sent[m.ID]; ok {
						lat = append(lat, now.Sub(t))
					}
				}
			},
		})
	}()
	<-ready
	const n = 2000
	tick := time.NewTicker(2 * time.Millisecond)
	for i := range n {
		<-tick.C
		tok := fmt.Sprint(900000 + i)
		vals := make([]event.Value, len(cols))
		for j := range vals {
			vals[j] = event.TextValue("x")
		}
		vals[0] = event.NumberValue(tok)
		id := "lat" + tok
		data := (&event.RowEvent{ID: id, Source: "s", Token: tok, Time: time.Now(), Report: "persons", Op: event.OpCreated, Sync: "s",
			Key: []byte(`{"personId":` + tok + `}`), After: schema.AppendRow(nil, vals)}).Append(nil)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		msg := nats.NewMsg("comet.persons.row.created." + tok)
		msg.Data = data
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(lat) != n {
		b.Fatalf("%d of %d events applied", len(lat), n)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99_ms")
}
