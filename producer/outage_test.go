package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"time"

	"github.com/cometstream/cometstream/internal/comet"
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
