package producer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// TestStateSaveSaysWhy: a state record changed behind the producer's back
// is blamed on another producer; a NATS outage is called one, not that.
func TestStateSaveSaysWhy(t *testing.T) {
	e := newPolledPersons(t, 20)
	ctx := context.Background()

	state := e.stateBucket()
	rec, err := state.Get(ctx, "persons")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Put(ctx, "persons", rec.Value()); err != nil { // another writer
		t.Fatal(err)
	}
	e.sim.Update("persons", 1)
	_, err = e.p.Poll(ctx, "persons")
	if err == nil || !strings.Contains(err.Error(), "save state of persons: the record changed behind this producer's back (another producer polling the same report?)") {
		t.Errorf("a record changed behind the producer's back: %v", err)
	}

	e.open(e.reportConfig("persons"))
	e.srv.Shutdown()
	testenv.WaitFor(t, "the connection to notice the outage", func() bool { return !e.nc.IsConnected() })
	// The pass's own publishes fail first; the record is what a pass whose
	// events were stored writes last.
	r := e.p.reports["persons"]
	r.state.Pages++
	err = r.saveState(ctx)
	if err == nil || !strings.Contains(err.Error(), "save state of persons: NATS is unreachable ("+e.srv.ClientURL()+"): ") || strings.Contains(err.Error(), "another producer") {
		t.Errorf("a NATS outage: %v; want it called one, and no other producer blamed", err)
	}
}

// TestPublishOutageSaysWhy: a pass whose events cannot reach NATS (the
// server gone) fails naming the outage, not the client's buffer.
func TestPublishOutageSaysWhy(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 200})
	e.openWith(func(c *Config) { c.AckTimeout = time.Second }, e.reportConfig("persons"))
	e.poll("persons")
	e.srv.Shutdown()
	testenv.WaitFor(t, "the connection to notice the outage", func() bool { return !e.nc.IsConnected() })
	e.sim.Update("persons", 50)
	_, err := e.p.Poll(context.Background(), "persons")
	if err == nil || !strings.Contains(err.Error(), "NATS is unreachable ("+e.srv.ClientURL()+")") {
		t.Errorf("a pass during a NATS outage: %v; want it to say NATS is unreachable, and which", err)
	}
	// The next pass fails reading the report's state first: that too.
	_, err = e.p.Poll(context.Background(), "persons")
	if err == nil || !strings.Contains(err.Error(), "NATS is unreachable ("+e.srv.ClientURL()+")") {
		t.Errorf("the next pass during a NATS outage: %v; want it to say NATS is unreachable, and which", err)
	}
}

// TestPassLongerThanAckTimeout: a pass may take far longer than the wait
// for one acknowledgement (a 1,000-page report at 10 calls a second takes
// minutes); only a shutdown bounds how long it waits for what it sent.
func TestPassLongerThanAckTimeout(t *testing.T) {
	for _, fenced := range []bool{false, true} {
		t.Run(map[bool]string{false: "async", true: "fenced"}[fenced], func(t *testing.T) {
			e := newEnv(t, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 500})
			slow := func(rc *ReportConfig) { rc.PageSize, rc.Comet.Limiter = 20, comet.NewLimiter(10) } // 25 pages: 2.5 s
			e.openWith(func(c *Config) { c.AckTimeout = 300 * time.Millisecond }, e.reportConfig("persons", slow))
			if fenced {
				e.p.reports["persons"].gate = func() error { return nil }
			}
			start := time.Now()
			s, err := e.p.Poll(context.Background(), "persons")
			if err != nil || s.Created != 500 {
				t.Fatalf("a pass of %v with acknowledgements awaited 300 ms at most: %+v, %v", time.Since(start).Round(time.Millisecond), s, err)
			}
			if took := time.Since(start); took < 4*300*time.Millisecond {
				t.Fatalf("the pass took %v: not long enough to test anything", took)
			}
			e.assertKV("persons")
		})
	}
}

// TestServerURLHidesToken: the server an outage names is shown without its
// password, or its token (a user given alone).
func TestServerURLHidesToken(t *testing.T) {
	for _, u := range []string{"nats://s3cr3t@127.0.0.1:4222", "nats://u:s3cr3t@127.0.0.1:4222"} {
		if got := serverURL(&nats.Conn{Opts: nats.Options{Url: u}}); strings.Contains(got, "s3cr3t") || !strings.Contains(got, "127.0.0.1:4222") {
			t.Errorf("%s shown as %s", u, got)
		}
	}
}

// TestCOMETFailureNotBlamedOnNATS: a page COMET failed is not called a
// NATS outage because the connection happens to be down meanwhile; a NATS
// error then is.
func TestCOMETFailureNotBlamedOnNATS(t *testing.T) {
	down := &nats.Conn{Opts: nats.Options{Url: "nats://127.0.0.1:4222"}} // never connected
	cometErr := fmt.Errorf("pass: %w", &comet.Error{Page: 3, Status: 503, Class: comet.ErrTransient, Err: errors.New("HTTP 503")})
	if got := explainNATS(down, cometErr); got != cometErr {
		t.Errorf("a COMET failure became %v", got)
	}
	if got := explainNATS(down, nats.ErrConnectionClosed); !strings.Contains(got.Error(), "NATS is unreachable (nats://127.0.0.1:4222)") {
		t.Errorf("a NATS failure: %v", got)
	}
}

// TestSlowAcknowledgements: a server that answers a second late while
// several reports publish at once, each with as many publishes in flight
// as it may have, fails no pass. Each report waits for its own
// acknowledgements (up to ack_timeout); none is refused because the
// reports together have more in flight than one report may.
func TestSlowAcknowledgements(t *testing.T) {
	const reports, rows, inFlight = 6, 100, 8
	var specs []simulator.ReportSpec
	for i := range reports {
		specs = append(specs, simulator.ReportSpec{Name: fmt.Sprintf("persons%d", i), Kind: "persons", Rows: rows})
	}
	e := newEnv(t, specs...)
	proxy := testenv.StartProxy(t, e.srv.ClientURL())
	nc, err := natsconn.Connect(natsconn.Options{URL: proxy.URL, Publisher: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var rcs []ReportConfig
	for _, s := range specs {
		rcs = append(rcs, e.reportConfig(s.Name))
	}
	e.openWith(func(c *Config) { c.Conn, c.MaxInFlight = nc, inFlight }, rcs...)
	// A first pass each, answered in time; then as many rows again, which
	// the second passes publish while the answers are held.
	for _, s := range specs {
		e.poll(s.Name)
		if err := e.sim.Insert(s.Name, rows, rows); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := e.js.Stream(context.Background(), "COMET")
	if err != nil {
		t.Fatal(err)
	}
	before := stream.CachedInfo().State.Msgs

	// Every pass gets as far as COMET's first page before the server's
	// answers are held, and publishes only after.
	var asked atomic.Int32
	served := make(chan struct{})
	e.sim.OnPage(func(_ string, page int) {
		if page == 0 {
			asked.Add(1)
			<-served
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, reports)
	for i, s := range specs {
		wg.Go(func() { _, errs[i] = e.p.Poll(context.Background(), s.Name) })
	}
	testenv.WaitFor(t, "every pass to ask for its first page", func() bool { return asked.Load() == reports })
	proxy.Hold(true)
	close(served)
	// The server stores what the reports send while its answers are held:
	// once it holds more than two reports may have in flight, every report
	// is waiting for acknowledgements.
	testenv.WaitFor(t, "the reports' first publishes to be stored", func() bool {
		s, err := e.js.Stream(context.Background(), "COMET")
		return err == nil && s.CachedInfo().State.Msgs >= before+2*inFlight+16
	})
	time.Sleep(time.Second) // the server is a second late: longer than nats.go's stall wait
	proxy.Hold(false)
	wg.Wait()

	for i, s := range specs {
		if errs[i] != nil {
			t.Errorf("pass of %s: %v", s.Name, errs[i])
		}
	}
	byReport := map[string]map[event.Type]int{}
	for _, ev := range e.events() {
		report := strings.Split(ev.Subject, ".")[1]
		if byReport[report] == nil {
			byReport[report] = map[event.Type]int{}
		}
		byReport[report][ev.Type]++
	}
	for _, s := range specs {
		got := byReport[s.Name]
		if got[event.TypeCreated] != 2*rows || got[event.TypeSchema] != 1 || got[event.TypeSynced] != 2 || len(got) != 3 {
			t.Errorf("%s published %v, want %d created, one schema and two synced", s.Name, got, 2*rows)
		}
		e.assertKV(s.Name)
	}
}

// TestStorageFullLosesNothing: when JetStream has no room left (its disk,
// or its storage limit, is full) passes fail saying so, and once room is
// made the producer catches up with nothing lost, duplicated or invented.
// The room is taken by another stream on the same server, as other data
// on a full disk would be, and freed by purging it.
func TestStorageFullLosesNothing(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the server did not start")
	}
	t.Cleanup(srv.Shutdown)
	e := newEnvOn(t, srv, simulator.ReportSpec{Name: "persons", Kind: "persons", Rows: 3000})
	ctx := context.Background()
	e.open(e.reportConfig("persons"))
	e.poll("persons")

	filler, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler"}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	chunks := uint64(0)
	for ; ; chunks++ {
		if _, err := e.js.Publish(ctx, "filler", chunk); err != nil {
			if !natsFull(err) {
				t.Fatalf("filling the store: %v", err)
			}
			break
		}
	}
	// Room for a few hundred events: the pass runs out of it midway.
	if err := filler.Purge(ctx, jetstream.WithPurgeKeep(chunks-4)); err != nil {
		t.Fatal(err)
	}
	before := len(e.events())
	e.sim.Update("persons", 1500)
	e.sim.Insert("persons", 500, 0)
	e.sim.Delete("persons", 100, -1)
	for range 2 {
		_, err := e.p.Poll(ctx, "persons")
		if err == nil || !strings.Contains(err.Error(), "NATS has no room to store more") {
			t.Fatalf("a pass with JetStream full: %v; want it to say NATS has no room", err)
		}
	}
	if stored := len(e.events()) - before; stored == 0 {
		t.Fatal("the pass stored no event before the room ran out; the test meant it to fail midway")
	}
	if strings.Contains(e.logs.String(), e.sim.Key("persons")) {
		t.Fatal("the API key is in the logs")
	}

	if err := filler.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	var last error
	t.Cleanup(func() {
		if t.Failed() && last != nil {
			t.Logf("the last pass after room was made: %v", last)
		}
	})
	testenv.WaitFor(t, "a pass once room is made", func() bool {
		_, last = e.p.Poll(ctx, "persons")
		return last == nil
	})
	// The pass that succeeded may have been the recovery; the next
	// consistent pass publishes what is left.
	e.poll("persons")
	e.poll("persons")
	if d := testenv.Diff(testenv.Chains(t, e.events())["persons"], e.want("persons")); d != "" {
		t.Errorf("the stream folded differs from the report: %s", d)
	}
	e.assertKV("persons")
}
