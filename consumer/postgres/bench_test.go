package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cometstream/cometstream/consumer"
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
	ctx := context.Background()
	var sinkTime, copyTime time.Duration
	for i := 0; b.Loop(); i++ {
		schema := fmt.Sprintf("bench_%d_%d", time.Now().UnixNano()%1e9, i)
		copyTime += copyBaseline(b, d, schema+"_copy", rows, cols)
		store, err := Open(ctx, d, schema)
		if err != nil {
			b.Fatal(err)
		}
		mctx, cancel := context.WithCancel(ctx)
		start := time.Now()
		var end time.Time
		ts := &timedStore{Store: store}
		err = consumer.Materialize(mctx, consumer.MaterializeConfig{
			JetStream: js, Durable: "bench" + schema, Store: ts, BatchSize: 5000, // as the sink command
			OnApplied: func(msgs []*consumer.Message) {
				if msgs[len(msgs)-1].Seq == last {
					end = time.Now()
					cancel()
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		sinkTime += end.Sub(start)
		b.ReportMetric(float64(ts.total.Load())/float64(end.Sub(start)), "share_in_postgres")
		var n int
		store.pool.QueryRow(ctx, `SELECT count(*) FROM `+Ident(schema)+`.persons`).Scan(&n)
		if n != benchEvents {
			b.Fatalf("%d rows, want %d", n, benchEvents)
		}
		store.pool.Exec(ctx, `DROP SCHEMA `+Ident(schema)+` CASCADE; DROP SCHEMA `+Ident(schema+"_copy")+` CASCADE`)
		store.Close()
	}
	total := float64(benchEvents * b.N)
	b.ReportMetric(total/sinkTime.Seconds(), "events/s")
	b.ReportMetric(total/copyTime.Seconds(), "copy_rows/s")
	b.ReportMetric(copyTime.Seconds()/sinkTime.Seconds(), "ratio")
}

func copyBaseline(b *testing.B, dsn, schema string, rows []event.Row, cols []event.Column) time.Duration {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var defs, names []string
	for _, c := range cols {
		defs = append(defs, Ident(c.Key)+" "+SQLType(c.Type))
		names = append(names, c.Key)
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+Ident(schema)+`; CREATE TABLE `+Ident(schema)+`.persons (`+joinComma(defs)+`, PRIMARY KEY ("personId"))`); err != nil {
		b.Fatal(err)
	}
	data := make([][]any, len(rows))
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

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}
