package producer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/natsconn"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

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
