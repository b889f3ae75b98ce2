package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
	"github.com/cometstream/cometstream/producer"
)

// TestSourcesOfOneCometShareTheLimit: two sources naming the same COMET
// (one base_url with a trailing slash) as the same user are one COMET user,
// whose 10 calls a second they share: passes of both at once never exceed
// it.
func TestSourcesOfOneCometShareTheLimit(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 4, RateLimit: 10, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 150, User: "federation"},
		{Name: "matches", Kind: "matches", Rows: 150, User: "federation"},
	}})
	t.Setenv("K_PERSONS", sim.Key("persons"))
	t.Setenv("K_MATCHES", sim.Key("matches"))
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`
data_dir: %s
sources:
  - name: faw
    base_url: %s
    reports:
      - {name: persons, api_key_env: K_PERSONS, user: federation, key: [personId], page_size: 10}
  - name: faw-again
    base_url: %s/
    reports:
      - {name: matches, api_key_env: K_MATCHES, user: federation, key: [competitionId, matchNo], page_size: 10}
`, t.TempDir(), base, base)))
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	reports, err := producerReports(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if reports[0].Comet.Limiter != reports[1].Comet.Limiter || reports[0].Group != reports[1].Group {
		t.Errorf("the reports of one COMET user have limiters %p and %p, groups %q and %q", reports[0].Comet.Limiter, reports[1].Comet.Limiter, reports[0].Group, reports[1].Group)
	}
	if !strings.Contains(logs.String(), "share one rate limit") {
		t.Errorf("no warning that the sources share a limit:\n%s", logs.String())
	}

	srv := testenv.StartNATS(t, t.TempDir())
	nc, _ := testenv.Connect(t, srv.ClientURL())
	p, err := producer.New(producer.Config{Conn: nc, Stream: "COMET", Prefix: "comet", Reports: reports, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, r := range []string{"persons", "matches"} {
		wg.Go(func() {
			if _, err := p.Poll(ctx, r); err != nil {
				t.Errorf("pass of %s: %v", r, err)
			}
		})
	}
	wg.Wait()
	st := sim.Stats()
	if u := st.Users["federation"]; u.Calls < 30 {
		t.Fatalf("%d calls in %s: too few to tell", u.Calls, time.Since(start))
	}
	if st.Violations != 0 {
		t.Errorf("the two sources together made more than 10 calls a second %d times: %+v", st.Violations, st.Users["federation"].Recent)
	}
}
