package producer

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/natsserver"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/streamrange"
	"github.com/cometstream/cometstream/internal/testenv"
)

const benchRows = 200_000

// firstPass runs a producer's first pass over a fresh simulator and a fresh
// NATS server and returns how long it took (Open and the pass).
func firstPass(b *testing.B, rows int) (time.Duration, *nats.Conn) {
	b.Helper()
	return firstPassOn(b, testenv.StartNATS(b, b.TempDir()), rows)
}

// benchProducer is a producer over a zero-latency simulated persons report
// of the given size.
func benchProducer(b *testing.B, srv *server.Server, rows int) (*Producer, *nats.Conn) {
	b.Helper()
	nc, _ := testenv.Connect(b, srv.ClientURL())
	sim, base := testenv.StartSim(b, simulator.Config{Seed: 1, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: rows}}})
	p, err := New(Config{
		Conn: nc, Stream: "COMET", Prefix: "comet", Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Reports: []ReportConfig{{Name: "persons", Key: []string{"personId"}, Interval: time.Hour, PageSize: 1000, MaxDeleteFraction: 0.5,
			Comet: comet.Config{BaseURL: base, APIKey: sim.Key("persons"), Limiter: comet.NewLimiter(1e6)}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return p, nc
}

func firstPassOn(b *testing.B, srv *server.Server, rows int) (time.Duration, *nats.Conn) {
	return firstPassMode(b, srv, rows, false)
}

// firstPassMode runs the first pass unfenced (one producer) or fenced (as a
// lease holder among several producers: atomic batches with expectations).
func firstPassMode(b *testing.B, srv *server.Server, rows int, fenced bool) (time.Duration, *nats.Conn) {
	b.Helper()
	p, nc := benchProducer(b, srv, rows)
	start := time.Now()
	if err := p.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	if fenced {
		p.reports["persons"].gate = func() error { return nil }
	}
	s, err := p.Poll(context.Background(), "persons")
	if err != nil || s.Created != rows {
		b.Fatalf("first pass: %+v, %v", s, err)
	}
	return time.Since(start), nc
}

// captured is one message the producer wrote, to be published again raw.
type captured struct {
	subject string
	header  nats.Header
	data    []byte
}

// capture reads back everything a first pass wrote: the events and the
// snapshot entries.
func capture(b *testing.B, nc *nats.Conn) []captured {
	js, _ := jetstream.New(nc)
	var out []captured
	for _, stream := range []string{"COMET", "KV_" + event.BucketName("comet", "persons")} {
		_, err := streamrange.Read(context.Background(), js, stream, jetstream.OrderedConsumerConfig{}, func(m jetstream.Msg) error {
			out = append(out, captured{subject: m.Subject(), header: m.Headers(), data: m.Data()})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkFirstPass200k measures rows per second through the whole
// producer (pages fetched, rows diffed, events published, snapshot written)
// against its baseline in the same run: raw JetStream async publishes, with
// message ids, of exactly the messages the producer wrote.
//
//	go test -run XXX -bench FirstPass200k -benchtime 1x ./producer
func BenchmarkFirstPass200k(b *testing.B) {
	var producerTime, rawTime time.Duration
	for b.Loop() {
		d, nc := firstPass(b, benchRows)
		producerTime += d
		msgs := capture(b, nc)

		srv := testenv.StartNATS(b, b.TempDir())
		raw, _ := testenv.Connect(b, srv.ClientURL())
		js, _ := jetstream.New(raw, jetstream.WithPublishAsyncMaxPending(8192))
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}, Duplicates: 2 * time.Minute}); err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: event.BucketName("comet", "persons")}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for _, m := range msgs {
			msg := &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}
			if _, err := js.PublishMsgAsync(msg); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("raw publishes not acknowledged")
		}
		rawTime += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(benchRows*n/producerTime.Seconds(), "rows/s")
	b.ReportMetric(benchRows*n/rawTime.Seconds(), "raw_rows/s")
	b.ReportMetric(rawTime.Seconds()/producerTime.Seconds(), "ratio")
}

// BenchmarkSteadyPass200k measures an unchanged pass over 200k rows in one
// process (simulator, NATS and producer), for profiling the diff path.
//
//	go test -run XXX -bench SteadyPass200k -benchtime 3x ./producer
func BenchmarkSteadyPass200k(b *testing.B) {
	p, _ := benchProducer(b, testenv.StartNATS(b, b.TempDir()), benchRows)
	if err := p.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := p.Poll(context.Background(), "persons"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := p.Poll(context.Background(), "persons")
		if err != nil || s.Created+s.Updated+s.Deleted != 0 {
			b.Fatalf("%+v %v", s, err)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSyncPolicy compares the embedded server's two durability
// settings on a first pass of 20k rows: JetStream's default (fsync every
// two minutes; a machine crash, not a process crash, can lose recent
// acknowledged writes) and sync: always (fsync before every acknowledgement).
//
//	go test -run XXX -bench SyncPolicy -benchtime 1x ./producer
func BenchmarkSyncPolicy(b *testing.B) {
	const rows = 20_000
	for _, always := range []bool{false, true} {
		name := "sync=default"
		if always {
			name = "sync=always"
		}
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				srv, err := natsserver.Start(natsserver.Options{StoreDir: b.TempDir(), Listen: "127.0.0.1:0", SyncAlways: always})
				if err != nil {
					b.Fatal(err)
				}
				d, _ := firstPassOn(b, srv, rows)
				total += d
				srv.Shutdown()
			}
			b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
		})
	}
}

// BenchmarkFirstPass200kFenced is BenchmarkFirstPass200k with the
// producer publishing as a lease holder among several (ha.lease_ttl):
// atomic batches of 1000 events, each expecting the report's last sequence.
// Baseline: the unfenced producer in the same run ("ratio").
//
// "batch_ceiling" is what the server allows fenced publishing: the events
// the fenced pass stored, published again raw to a fresh server as the
// fence requires (batches of 1000, each sent once the one before is
// acknowledged), over the same events published raw asynchronously.
// "of_ceiling" is the fenced producer's rows a second over the raw
// batches' events a second: how close the producer comes to the server.
//
//	go test -run XXX -bench FirstPass200kFenced -benchtime 1x ./producer
func BenchmarkFirstPass200kFenced(b *testing.B) {
	var fenced, plain, rawAsync, rawBatches time.Duration
	for b.Loop() {
		d, nc := firstPassMode(b, testenv.StartNATS(b, b.TempDir()), benchRows, true)
		fenced += d
		var events []captured // the stream's, not the bucket's
		for _, m := range capture(b, nc) {
			if strings.HasPrefix(m.subject, "comet.") {
				events = append(events, m)
			}
		}
		rawAsync += publishRaw(b, events, false)
		rawBatches += publishRaw(b, events, true)
		d, _ = firstPassMode(b, testenv.StartNATS(b, b.TempDir()), benchRows, false)
		plain += d
	}
	n := float64(b.N)
	b.ReportMetric(benchRows*n/fenced.Seconds(), "fenced_rows/s")
	b.ReportMetric(benchRows*n/plain.Seconds(), "unfenced_rows/s")
	b.ReportMetric(plain.Seconds()/fenced.Seconds(), "ratio")
	b.ReportMetric(rawAsync.Seconds()/rawBatches.Seconds(), "batch_ceiling")
	b.ReportMetric(rawBatches.Seconds()/fenced.Seconds(), "of_ceiling")
}

// publishRaw publishes events to a fresh server, asynchronously or in
// fenced atomic batches one after the other, and returns how long it took.
func publishRaw(b *testing.B, events []captured, batches bool) time.Duration {
	b.Helper()
	srv := testenv.StartNATS(b, b.TempDir())
	nc, _ := testenv.Connect(b, srv.ClientURL())
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "COMET", Subjects: []string{"comet.>"}, Duplicates: 2 * time.Minute, AllowAtomicPublish: true}); err != nil {
		b.Fatal(err)
	}
	msg := func(m captured) *nats.Msg {
		h := nats.Header{}
		for _, k := range []string{jetstream.MsgIDHeader, "Content-Type"} {
			h.Set(k, m.header.Get(k))
		}
		return &nats.Msg{Subject: m.subject, Header: h, Data: m.data}
	}
	start := time.Now()
	if !batches {
		for _, m := range events {
			if _, err := js.PublishMsgAsync(msg(m), jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("raw publishes not acknowledged")
		}
		return time.Since(start)
	}
	var last uint64
	for i := 0; i < len(events); i += maxBatch {
		batch := events[i:min(i+maxBatch, len(events))]
		id := nuid.Next()
		for j, m := range batch {
			out := msg(m)
			out.Header.Set(batchIDHeader, id)
			out.Header.Set(batchSequenceHeader, strconv.Itoa(j+1))
			if j == 0 {
				out.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
				out.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, event.ReportFilter("comet", "persons"))
			}
			if j < len(batch)-1 {
				if err := nc.PublishMsg(out); err != nil {
					b.Fatal(err)
				}
				continue
			}
			out.Header.Set(batchCommitHeader, "1")
			ack, err := js.PublishMsgAsync(out)
			if err != nil {
				b.Fatal(err)
			}
			select {
			case a := <-ack.Ok():
				last = a.Sequence
			case err := <-ack.Err():
				b.Fatalf("raw batch: %v", err)
			}
		}
	}
	return time.Since(start)
}
