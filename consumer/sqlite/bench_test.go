package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
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
		store := openBench(b)
		sinkTime += sinktest.ApplyUntil(b, js, store, fmt.Sprint("bench", i), 0, last)
		store.finish(b, benchEvents)
	}
	sinktest.ReportRates(b, float64(benchEvents*b.N), sinkTime, baseTime, "events/s", "baseline_rows/s")
}

// openBench opens the sink's store of one run of a benchmark, on a new
// database.
func openBench(b *testing.B) *Store {
	b.Helper()
	store, err := Open(context.Background(), filepath.Join(b.TempDir(), "sink.db"))
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// finish ends one run of a benchmark: it fails b unless the sink's persons
// table holds n rows, and closes the store.
func (s *Store) finish(b *testing.B, n int) {
	b.Helper()
	var got int
	s.DB().QueryRow(`SELECT count(*) FROM persons`).Scan(&got)
	if got != n {
		b.Fatalf("%d rows in the sink, want %d", got, n)
	}
	s.Close()
}

// baselineTable opens a new database for a baseline, in WAL mode with
// synchronous NORMAL on one connection as the store's, and creates in it a
// persons table of the columns; the caller closes it.
func baselineTable(b *testing.B, path string, cols []event.Column) *sql.DB {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	var defs []string
	for _, c := range cols {
		defs = append(defs, Ident(c.Key)+" "+sqlType(c.Type))
	}
	if _, err := db.Exec(`CREATE TABLE persons (` + strings.Join(defs, ", ") + `, PRIMARY KEY ("personId"))`); err != nil {
		db.Close()
		b.Fatal(err)
	}
	return db
}

// baseline inserts the rows with plain batched upserts.
func baseline(b *testing.B, path string, rows []event.Row, cols []event.Column) time.Duration {
	db := baselineTable(b, path, cols)
	defer db.Close()
	var names, marks, sets []string
	for _, c := range cols {
		names = append(names, Ident(c.Key))
		marks = append(marks, "?")
		sets = append(sets, Ident(c.Key)+" = excluded."+Ident(c.Key))
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

// bootstrapRows is the size of the snapshot BenchmarkBootstrap1M loads.
const bootstrapRows = 1_000_000

// BenchmarkBootstrap1M measures how fast the SQLite sink fills a new
// database from a snapshot bucket of 1M persons: Materialize from its start
// until it follows the stream, which is reading the bucket from NATS (a
// nats-server of go.mod's release, in a process of its own as a sink's
// server is), decoding the rows and the bulk load. Its baseline, in the
// same run: the same rows, already converted, inserted into an empty table
// of the same layout in one transaction with a prepared INSERT of 256 rows
// ("ratio"). "read_rows/s" is the bucket read alone, doing nothing with the
// messages, and "of_serial" the read and the insert one after the other
// over the sink's time.
//
//	go test -run XXX -bench Bootstrap1M -benchtime 1x ./consumer/sqlite
func BenchmarkBootstrap1M(b *testing.B) {
	// The server runs in a process of its own, as a sink's does.
	_, js := testenv.Connect(b, testenv.StartNATSBinary(b, testenv.CurrentNATSServer(b)))
	sinktest.PublishSnapshot(b, js, bootstrapRows)
	var sinkTime, baseTime, readTime time.Duration
	for i := 0; b.Loop(); i++ {
		readTime += sinktest.ReadSnapshot(b, js)
		rows, cols := sinktest.Persons(b, bootstrapRows)
		baseTime += bulkBaseline(b, filepath.Join(b.TempDir(), "base.db"), rows, cols)
		rows = nil
		runtime.GC() // the baseline's rows are not the sink's garbage
		store := openBench(b)
		sinkTime += sinktest.Bootstrap(b, js, store, fmt.Sprint("bootstrap", i), 0)
		store.finish(b, bootstrapRows)
	}
	total := float64(bootstrapRows * b.N)
	sinktest.ReportRates(b, total, sinkTime, baseTime, "bootstrap_rows/s", "baseline_rows/s")
	b.ReportMetric(total/readTime.Seconds(), "read_rows/s")
	b.ReportMetric((readTime+baseTime).Seconds()/sinkTime.Seconds(), "of_serial")
}

// bulkBaseline inserts the rows into an empty table in one transaction,
// 256 to a prepared INSERT.
func bulkBaseline(b *testing.B, path string, rows []event.Row, cols []event.Column) time.Duration {
	db := baselineTable(b, path, cols)
	defer db.Close()
	var names, marks []string
	for _, c := range cols {
		names = append(names, Ident(c.Key))
		marks = append(marks, "?")
	}
	const per = 256
	tuple := "(" + strings.Join(marks, ", ") + ")"
	insert := func(n int) string {
		return `INSERT INTO persons (` + strings.Join(names, ", ") + `) VALUES ` + strings.Repeat(tuple+", ", n-1) + tuple
	}
	args := make([]any, 0, len(rows)*len(cols))
	for _, r := range rows {
		for _, c := range cols {
			args = append(args, Arg(r[c.Key]))
		}
	}
	start := time.Now()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare(insert(per))
	if err != nil {
		b.Fatal(err)
	}
	w := len(cols)
	for i := 0; i < len(rows); i += per {
		n := min(per, len(rows)-i)
		s := st
		if n < per {
			if s, err = tx.Prepare(insert(n)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.Exec(args[i*w : (i+n)*w]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
