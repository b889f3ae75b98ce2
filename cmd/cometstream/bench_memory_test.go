package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/streamrange"
	"github.com/cometstream/cometstream/internal/testenv"
)

// benchRows is the report size of the memory benchmarks:
// COMETSTREAM_BENCH_ROWS, default a million.
func benchRows(b *testing.B) int {
	if s := os.Getenv("COMETSTREAM_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("COMETSTREAM_BENCH_ROWS=%q", s)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkEmbeddedDefault1M runs `cometstream produce` as the README starts
// it, with its embedded NATS server and the default memory_limit, over a
// simulated persons report of a million rows served without latency or
// rate limit: a first pass, then a steady pass. It reports the process's
// peak RSS (VmHWM: producer and embedded server together) after each pass,
// the first pass's rows a second, and, as the baseline measured in the same
// run, raw JetStream async publishes of exactly the messages the producer
// wrote (events and snapshot entries, read back) to a fresh server of the
// same version.
//
//	go test -run XXX -bench EmbeddedDefault1M -benchtime 1x -timeout 30m ./cmd/cometstream
func BenchmarkEmbeddedDefault1M(b *testing.B) { benchFirstAndSteady(b, false) }

// BenchmarkProducerAlone1M is BenchmarkEmbeddedDefault1M with the NATS
// server outside the producer's process (in the benchmark's): the peak RSS
// is the producer's own.
//
//	go test -run XXX -bench ProducerAlone1M -benchtime 1x -timeout 30m ./cmd/cometstream
func BenchmarkProducerAlone1M(b *testing.B) { benchFirstAndSteady(b, true) }

func benchFirstAndSteady(b *testing.B, external bool) {
	rows := benchRows(b)
	for b.Loop() {
		dir := b.TempDir()
		sim, base := testenv.StartSim(b, simulator.Config{Seed: 7, Reports: []simulator.ReportSpec{{Name: "persons", Kind: "persons", Rows: rows}}})
		natsURL, natsLine := "", "listen: "+freeAddr(b)
		if external {
			srv := testenv.StartNATS(b, filepath.Join(dir, "external"))
			natsURL = srv.ClientURL()
			natsLine = "url: " + natsURL
		}
		cfg := filepath.Join(dir, "cometstream.yaml")
		yaml := fmt.Sprintf(`data_dir: %s
nats: {%s}
http: {listen: %q}
sources:
  - name: sim
    base_url: %s
    rate_limit: 1000
    reports:
      - {name: persons, api_key_env: COMET_PERSONS_KEY, key: [personId], interval: 1s}
`, filepath.Join(dir, "data"), natsLine, freeAddr(b), base)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			b.Fatal(err)
		}
		p := testenv.Start(b, "producer", []string{"COMET_PERSONS_KEY=" + sim.Key("persons"), "GOMEMLIMIT="}, "produce", "--config", cfg, "--log-format", "json")
		if natsURL == "" {
			natsURL = "nats://" + natsLine[len("listen: "):]
		}
		var nc *nats.Conn
		for deadline := time.Now().Add(time.Minute); nc == nil; time.Sleep(50 * time.Millisecond) {
			if c, err := nats.Connect(natsURL, nats.Name("benchmark")); err == nil {
				nc = c
			} else if time.Now().After(deadline) {
				b.Fatalf("no NATS server at %s: %v\n%s", natsURL, err, p.Tail(3000))
			}
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		first, seq := waitSynced(b, js, "persons", 0, 20*time.Minute)
		if first.Created != rows {
			b.Fatalf("first pass: %+v", first)
		}
		hwmFirst := procPeakRSS(b, p.Pid())
		steady, _ := waitSynced(b, js, "persons", seq, 20*time.Minute)
		if steady.Created+steady.Updated+steady.Deleted != 0 || !steady.Consistent {
			b.Fatalf("steady pass: %+v", steady)
		}
		hwmSteady := procPeakRSS(b, p.Pid())
		firstSecs := first.Finished.Sub(first.Started).Seconds()

		msgs, configs := captureAll(b, js)
		p.Signal(os.Interrupt)
		if err := p.Stop(); err != nil {
			b.Fatalf("producer: %v\n%s", err, p.Tail(2000))
		}
		nc.Close()
		raw := rawPublish(b, msgs, configs)

		b.ReportMetric(hwmFirst, "peak_MB_first")
		b.ReportMetric(hwmSteady, "peak_MB_steady")
		b.ReportMetric(float64(rows)/firstSecs, "rows/s")
		b.ReportMetric(float64(rows)/raw.Seconds(), "raw_rows/s")
		b.ReportMetric(raw.Seconds()/firstSecs, "ratio")
		b.ReportMetric(steady.Finished.Sub(steady.Started).Seconds(), "steady_s")
	}
}

// captureAll reads back every message of the event stream and the snapshot
// bucket's stream, and their configurations.
func captureAll(b *testing.B, js jetstream.JetStream) ([]nats.Msg, []jetstream.StreamConfig) {
	ctx := context.Background()
	var msgs []nats.Msg
	var configs []jetstream.StreamConfig
	for _, name := range []string{event.DefaultStream, event.KVStream(event.BucketName(event.DefaultPrefix, "persons"))} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		configs = append(configs, s.CachedInfo().Config)
		_, err = streamrange.Read(ctx, js, name, jetstream.OrderedConsumerConfig{}, func(m jetstream.Msg) error {
			h := nats.Header{}
			for k, v := range m.Headers() {
				h[k] = v
			}
			msgs = append(msgs, nats.Msg{Subject: m.Subject(), Header: h, Data: m.Data()})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return msgs, configs
}

// rawPublish publishes msgs asynchronously to a fresh server with the same
// streams, as many in flight as the producer allows itself, and returns how
// long until every one was acknowledged.
func rawPublish(b *testing.B, msgs []nats.Msg, configs []jetstream.StreamConfig) time.Duration {
	srv := testenv.StartNATS(b, b.TempDir())
	nc, _ := testenv.Connect(b, srv.ClientURL())
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range configs {
		if _, err := js.CreateStream(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for i := range msgs {
		if _, err := js.PublishMsgAsync(&msgs[i], jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		b.Fatal("raw publishes not acknowledged")
	}
	return time.Since(start)
}
