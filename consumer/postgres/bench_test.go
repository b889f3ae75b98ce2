package postgres

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cometstream/cometstream/consumer/sinktest"
	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/testenv"
)

const benchEvents = 100_000

// BenchmarkSinkApply100k measures how fast the PostgreSQL sink applies 100k
// created events from the stream, against its baseline in the same run: a
// plain pgx COPY of the same rows into a table of the same layout.
// share_in_postgres is the part of the sink's time spent in Store.Apply.
//
//	COMETSTREAM_POSTGRES_DSN=... go test -run XXX -bench SinkApply100k -benchtime 1x ./consumer/postgres
func BenchmarkSinkApply100k(b *testing.B) {
	d := dsn(b)
	srv := testenv.StartNATS(b, b.TempDir())
	_, js := testenv.Connect(b, srv.ClientURL())
	rows, cols, last := sinktest.PublishPersons(b, js, benchEvents)
	var sinkTime, copyTime time.Duration
	for i := 0; b.Loop(); i++ {
		schema := benchSchema(i)
		copyTime += copyBaseline(b, d, schema+"_copy", rows, cols)
		store := openBench(b, d, schema)
		ts := &timedStore{Store: store}
		took := sinktest.ApplyUntil(b, js, ts, "bench"+schema, 5000, last) // 5000: as the sink command
		sinkTime += took
		b.ReportMetric(float64(ts.total.Load())/float64(took), "share_in_postgres")
		store.finish(b, schema, benchEvents)
	}
	sinktest.ReportRates(b, float64(benchEvents*b.N), sinkTime, copyTime, "events/s", "copy_rows/s")
}

// benchSchema names a schema for run i of a benchmark, one no earlier
// run has used.
func benchSchema(i int) string { return fmt.Sprintf("bench_%d_%d", time.Now().UnixNano()%1e9, i) }

// openBench opens the sink's store of one run of a benchmark, on schema.
func openBench(b *testing.B, d, schema string) *Store {
	b.Helper()
	store, err := Open(context.Background(), d, schema)
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// finish ends one run of a benchmark: it fails b unless the sink's persons
// table holds n rows, and drops the run's schemas.
func (s *Store) finish(b *testing.B, schema string, n int) {
	b.Helper()
	var got int
	s.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+Ident(schema)+`.persons`).Scan(&got)
	if got != n {
		b.Fatalf("%d rows, want %d", got, n)
	}
	s.drop(schema)
}

// drop drops the schemas of one run of a benchmark, the sink's and the
// baseline's, and closes the store.
func (s *Store) drop(schema string) {
	s.pool.Exec(context.Background(), `DROP SCHEMA `+Ident(schema)+` CASCADE; DROP SCHEMA `+Ident(schema+"_copy")+` CASCADE`)
	s.Close()
}

func copyBaseline(b *testing.B, dsn, schema string, rows []event.Row, cols []event.Column) time.Duration {
	ctx := context.Background()
	conn := dial(b, dsn)
	defer conn.Close(ctx)
	var defs, names []string
	for _, c := range cols {
		defs = append(defs, Ident(c.Key)+" "+SQLType(c.Type))
		names = append(names, c.Key)
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+Ident(schema)+`; CREATE TABLE `+Ident(schema)+`.persons (`+strings.Join(defs, ", ")+`, PRIMARY KEY ("personId"))`); err != nil {
		b.Fatal(err)
	}
	data := make([][]any, len(rows))
	var err error
	for i, r := range rows {
		data[i] = make([]any, len(cols))
		for j, c := range cols {
			if data[i][j], err = pgValue(c.Type, r[c.Key]); err != nil {
				b.Fatal(err)
			}
		}
	}
	start := time.Now()
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{schema, "persons"}, names, pgx.CopyFromRows(data)); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// bootstrapRows is the size of the snapshot BenchmarkBootstrap1M loads.
const bootstrapRows = 1_000_000

// BenchmarkBootstrap1M measures how fast the PostgreSQL sink fills a new
// schema from a snapshot bucket of 1M persons: Materialize from its start
// until it follows the stream, which is reading the bucket from NATS (a
// nats-server of go.mod's release, in a process of its own as a sink's
// server is), decoding the rows and the bulk load. Its baseline, in the
// same run: a plain pgx COPY of the same rows, already converted, into an
// empty table of the same layout ("ratio"). "read_rows/s" is the bucket
// read alone, doing nothing with the messages, and "of_serial" the read and
// the COPY one after the other over the sink's time.
//
//	COMETSTREAM_POSTGRES_DSN=... go test -run XXX -bench Bootstrap1M -benchtime 1x -timeout 30m ./consumer/postgres
func BenchmarkBootstrap1M(b *testing.B) {
	d := dsn(b)
	// The server runs in a process of its own, as a sink's does.
	_, js := testenv.Connect(b, testenv.StartNATSBinary(b, testenv.CurrentNATSServer(b)))
	sinktest.PublishSnapshot(b, js, bootstrapRows)
	var sinkTime, copyTime, readTime time.Duration
	for i := 0; b.Loop(); i++ {
		schema := benchSchema(i)
		readTime += sinktest.ReadSnapshot(b, js)
		rows, cols := sinktest.Persons(b, bootstrapRows)
		copyTime += copyBaseline(b, d, schema+"_copy", rows, cols)
		rows = nil
		runtime.GC() // the baseline's rows are not the sink's garbage
		store := openBench(b, d, schema)
		sinkTime += sinktest.Bootstrap(b, js, store, "bench"+schema, 5000)
		store.finish(b, schema, bootstrapRows)
	}
	total := float64(bootstrapRows * b.N)
	sinktest.ReportRates(b, total, sinkTime, copyTime, "bootstrap_rows/s", "copy_rows/s")
	b.ReportMetric(total/readTime.Seconds(), "read_rows/s")
	b.ReportMetric((readTime+copyTime).Seconds()/sinkTime.Seconds(), "of_serial")
}

// BenchmarkSinkChanges100k measures how fast the PostgreSQL sink applies a
// pass that changes a 100k-row table: every row updated, every tenth then
// deleted (110k events), 5,000 to a transaction, against a plain pgx COPY
// of 100k rows into an empty table of the same layout in the same run.
//
//	COMETSTREAM_POSTGRES_DSN=... go test -run XXX -bench SinkChanges100k -benchtime 1x ./consumer/postgres
func BenchmarkSinkChanges100k(b *testing.B) {
	d := dsn(b)
	ctx := context.Background()
	var sinkTime, copyTime time.Duration
	events := 0
	server := testenv.CurrentNATSServer(b) // in a process of its own, as a sink's
	for i := 0; b.Loop(); i++ {
		_, js := testenv.Connect(b, testenv.StartNATSBinary(b, server))
		rows, cols, created := sinktest.PublishPersons(b, js, benchEvents)
		schema := benchSchema(i)
		copyTime += copyBaseline(b, d, schema+"_copy", rows, cols)
		store := openBench(b, d, schema)
		sinktest.ApplyUntil(b, js, store, "bench"+schema, 5000, created)
		n, last := sinktest.PublishChanges(b, js, rows, cols)
		events += n
		rows = nil
		runtime.GC()
		sinkTime += sinktest.ApplyUntil(b, js, store, "bench"+schema, 5000, last)
		var left, moved int
		store.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE club LIKE 'Moved %') FROM `+Ident(schema)+`.persons`).Scan(&left, &moved)
		if want := benchEvents - benchEvents/10; left != want || moved != want {
			b.Fatalf("%d rows, %d of them changed; want %d and %d", left, moved, want, want)
		}
		store.drop(schema)
	}
	b.ReportMetric(float64(events)/sinkTime.Seconds(), "events/s")
	b.ReportMetric(float64(benchEvents*b.N)/copyTime.Seconds(), "copy_rows/s")
	b.ReportMetric(copyTime.Seconds()/sinkTime.Seconds()*float64(events)/float64(benchEvents*b.N), "ratio")
}
