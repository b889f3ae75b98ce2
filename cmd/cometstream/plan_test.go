package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

// planConfig is a configuration of three reports of the simulator: persons
// (250 rows, served at most 10 a page) and matches (60 rows) for the user
// federation, fees (5 rows) for finance; the intervals of persons and
// matches are given. Its embedded server would choose its port, so plan
// has no server to read state records from and asks page 0.
const planConfig = `data_dir: %s
http: {listen: ""}
nats: {listen: "127.0.0.1:0"}
sources:
  - name: sim
    base_url: %s
    rate_limit: 10
    reports:
      - {name: persons, api_key_env: PLAN_PERSONS_KEY, user: federation, page_size: 25, interval: %s}
      - {name: matches, api_key_env: PLAN_MATCHES_KEY, user: federation, page_size: 20, interval: %s}
      - {name: fees, api_key_env: PLAN_FEES_KEY, user: finance, interval: 1s}
`

// planRow returns the table line of a report, its cells separated by
// single spaces, or "" when there is none.
func planRow(out, report string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, report+" ") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

// runPlanBin runs plan and stops the test unless it exits with status.
func runPlanBin(t *testing.T, env []string, status int, args ...string) string {
	t.Helper()
	got, out := runBin(t, env, append([]string{"plan"}, args...)...)
	if got != status {
		t.Fatalf("exit %d, want %d:\n%s", got, status, out)
	}
	return out
}

// checkPlan checks the table row of each report in plan's output, and the
// lines it should say.
func checkPlan(t *testing.T, out string, rows map[string]string, says ...string) {
	t.Helper()
	for report, want := range rows {
		if got := planRow(out, report); got != want {
			t.Errorf("%s: row %q, want %q\n%s", report, got, want, out)
		}
	}
	for _, want := range says {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPlan(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 11, RateLimit: 10, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 250, User: "federation", Shapes: simulator.Shapes{PageCap: 10}},
		{Name: "matches", Kind: "matches", Rows: 60, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 5, User: "finance"},
	}})
	env := []string{"NATS_URL=", "PLAN_PERSONS_KEY=" + sim.Key("persons"), "PLAN_MATCHES_KEY=" + sim.Key("matches"), "PLAN_FEES_KEY=" + sim.Key("fees")}
	requests := func() map[string]int {
		out := map[string]int{}
		for name, st := range sim.Stats().Reports {
			out[name] = st.Requests
		}
		return out
	}

	t.Run("fits", func(t *testing.T) {
		cfg := writeFile(t, "fits.yaml", fmt.Sprintf(planConfig, t.TempDir(), base, "1m", "10s"))
		before := requests()
		out := runPlanBin(t, env, 0, "--config", cfg)
		// persons asks 25 rows a page and is served 10: 25 pages, not 10.
		// federation's budget is 10 × 60 × 0.96 = 576 calls a minute; it
		// needs 25 + 18 = 43, and every interval × 43/576 would use it all.
		checkPlan(t, out, map[string]string{
			"persons": "persons 25 page 0 now 1m0s 25 50 2.7s 2.7s 4.5s ok",
			"matches": "matches 3 page 0 now 10s 18 36 320ms 1s 1s ok",
			"fees":    "fees 1 page 0 now 1s 60 120 110ms 1s 1s ok",
		},
			"sim/federation: rate_limit 10/s less 4% = budget 576 calls/min; need 43 (7%), up to 86 with confirming passes: ok",
			"sim/finance: rate_limit 10/s less 4% = budget 576 calls/min; need 60 (10%), up to 120 with confirming passes: ok",
			"SHORTEST SHARED scales every interval of a user by one factor",
		)
		if strings.Contains(out, "WARNING") {
			t.Errorf("a plan that fits warns:\n%s", out)
		}
		// One request for page 0 of each report, no more.
		after := requests()
		for _, name := range []string{"persons", "matches", "fees"} {
			if n := after[name] - before[name]; n != 1 {
				t.Errorf("%s: plan made %d requests, want 1 (page 0)", name, n)
			}
		}

		status, out := runBin(t, env, "plan", "--config", cfg, "--json")
		var got planOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil || status != 0 {
			t.Fatalf("--json: exit %d, %v:\n%s", status, err, out)
		}
		if !got.OK || len(got.Users) != 2 || got.Users[0].User != "federation" || len(got.Users[0].Reports) != 2 {
			t.Fatalf("--json: %+v", got)
		}
		p := got.Users[0].Reports[0]
		if p.Report != "persons" || p.Pages != 25 || p.From != "page 0 now" || p.Need != 25 || p.Worst != 50 || got.Users[0].Budget < 575.99 || got.Users[0].Budget > 576.01 {
			t.Errorf("--json persons: %+v, budget %v", p, got.Users[0].Budget)
		}
	})

	t.Run("does not fit", func(t *testing.T) {
		// persons every 2s: 750 calls a minute, and a pass of 25 pages at
		// 9.6 calls a second takes 2.6s.
		cfg := writeFile(t, "over.yaml", fmt.Sprintf(planConfig, t.TempDir(), base, "2s", "10s"))
		out := runPlanBin(t, env, 1, "--config", cfg)
		checkPlan(t, out, map[string]string{
			"persons": "persons 25 page 0 now 2s 750 1500 2.7s 2.7s 2.7s OVER BUDGET, PASS LONGER THAN INTERVAL",
			"matches": "matches 3 page 0 now 10s 18 36 320ms 1s 13.4s OVER BUDGET",
			"fees":    "fees 1 page 0 now 1s 60 120 110ms 1s 1s ok",
		},
			"need 768 (133%), up to 1536 with confirming passes: CANNOT KEEP THEIR INTERVALS: persons, matches",
			"WARNING: persons: a pass takes at least 2.7s (25 pages at 9.6 calls a second), longer than its interval 2s: the next pass follows at once",
			"WARNING: sim/federation: the reports need 768 calls a minute, over the budget of 576: persons, matches cannot keep their intervals (one limiter slows them all); every interval × 1.33 fits: persons 2.7s, matches 13.4s",
			"sim/finance: rate_limit 10/s less 4% = budget 576 calls/min; need 60 (10%), up to 120 with confirming passes: ok",
			"cometstream: 2 report(s) cannot keep their interval (or cannot be shown to): persons (over budget, pass longer than interval), matches (over budget)",
		)
	})

	t.Run("pages unknown", func(t *testing.T) {
		cfg := writeFile(t, "fits.yaml", fmt.Sprintf(planConfig, t.TempDir(), base, "1m", "10s"))
		status, out := runBin(t, append(env, "PLAN_FEES_KEY="), "plan", "--config", cfg)
		if status != 1 || !strings.Contains(out, "WARNING: fees: pages unknown (no API key for page 0: sources[0].reports[2].api_key_env: environment variable PLAN_FEES_KEY is not set)") ||
			planRow(out, "fees") != "fees ? - 1s - - - - - PAGES UNKNOWN" || !strings.Contains(out, "sim/federation: rate_limit 10/s less 4% = budget 576 calls/min; need 43 (7%)") {
			t.Errorf("exit %d, want 1 and fees unknown, federation still planned:\n%s", status, out)
		}
	})

	t.Run("key refused", func(t *testing.T) {
		// Page 0 is requested with the key in its URL: what plan says of a
		// refused key names the report, never the key.
		const wrong = "k3y-that-comet-refuses-7f3a"
		cfg := writeFile(t, "fits.yaml", fmt.Sprintf(planConfig, t.TempDir(), base, "1m", "10s"))
		status, out := runBin(t, append(env, "PLAN_FEES_KEY="+wrong), "plan", "--config", cfg)
		if status != 1 || planRow(out, "fees") != "fees ? - 1s - - - - - PAGES UNKNOWN" || !strings.Contains(out, "WARNING: fees: pages unknown") {
			t.Errorf("exit %d, want 1 and fees unknown:\n%s", status, out)
		}
		for _, key := range []string{wrong, sim.Key("persons"), sim.Key("matches")} {
			if strings.Contains(out, key) {
				t.Errorf("plan's output holds an API key:\n%s", out)
			}
		}
	})

	t.Run("bad usage", func(t *testing.T) {
		if status, out := runBin(t, env, "plan"); status != 2 || !strings.Contains(out, "--config is required") {
			t.Errorf("no --config: exit %d\n%s", status, out)
		}
		cfg := writeFile(t, "bad.yaml", fmt.Sprintf(planConfig, t.TempDir(), base, "500ms", "10s"))
		if status, out := runBin(t, env, "plan", "--config", cfg); status != 2 || !strings.Contains(out, "sources[0].reports[0].interval: 500ms is shorter than 1s") {
			t.Errorf("invalid configuration: exit %d\n%s", status, out)
		}
	})

	if v := sim.Stats().Violations; v != 0 {
		t.Errorf("plan broke the simulator's rate limit %d times", v)
	}
}

// TestPlanFromLastPass runs a producer until every report has a complete
// pass in its state record, then plans with --nats and no API keys: the
// page counts come from the last pass, not from COMET.
func TestPlanFromLastPass(t *testing.T) {
	// Every report at page_size 20 every second, rate_limit 200.
	w := newStack(t, simulator.Config{Seed: 12, Reports: []simulator.ReportSpec{
		{Name: "persons", Kind: "persons", Rows: 250, User: "federation"},
		{Name: "fees", Kind: "fees", Rows: 30, User: "federation"},
	}})
	producer := w.produce(t)

	ctx := context.Background()
	pages := func(report string) int {
		s, err := w.js.Stream(ctx, "COMET")
		if err != nil {
			return 0
		}
		if _, err := s.GetLastMsgForSubject(ctx, event.ReportSubject("comet", report, event.KindSynced)); err != nil {
			return 0
		}
		kv, err := w.js.KeyValue(ctx, event.StateBucketName("comet"))
		if err != nil {
			return 0
		}
		e, err := kv.Get(ctx, report)
		if errors.Is(err, jetstream.ErrKeyNotFound) || err != nil {
			return 0
		}
		var st event.ReportState
		if json.Unmarshal(e.Value(), &st) != nil {
			return 0
		}
		return st.Pages
	}
	testenv.WaitFor(t, "a synced receipt and a complete pass of every report in its state record", func() bool {
		return pages("persons") > 0 && pages("fees") > 0
	})
	if p, f := pages("persons"), pages("fees"); p != 13 || f != 2 {
		t.Fatalf("state records say persons %d pages, fees %d; want 13 and 2 (250 and 30 rows at 20 a page)\n%s", p, f, producer.Tail(2000))
	}

	// No API keys in the environment: only the state records can say.
	noKeys := []string{"NATS_URL="}
	out := runPlanBin(t, noKeys, 0, "--config", w.config, "--nats", w.url)
	// Budget 200 × 60 × 0.96 = 11520 calls a minute; 13 + 2 pages every
	// second need 900.
	checkPlan(t, out, map[string]string{
		"persons": "persons 13 last pass 1s 780 1560 70ms 1s 1s ok",
		"fees":    "fees 2 last pass 1s 120 240 20ms 1s 1s ok",
	},
		"note: page counts from the producer's state records (bucket comet-state at "+w.url,
		"sim/federation: rate_limit 200/s less 4% = budget 11520 calls/min; need 900 (8%), up to 1800 with confirming passes: ok",
	)

	// The same configuration as an embedded server's (nats.listen, no
	// url): plan reads the state records where that server listens.
	b, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	listen := strings.TrimPrefix(w.url, "nats://")
	embedded := strings.Replace(string(b), "  url: "+w.url+"\n", "  listen: "+listen+"\n", 1)
	if embedded == string(b) {
		t.Fatalf("no nats.url to replace in\n%s", b)
	}
	out = runPlanBin(t, noKeys, 0, "--config", writeFile(t, "embedded.yaml", embedded))
	checkPlan(t, out, map[string]string{"persons": "persons 13 last pass 1s 780 1560 70ms 1s 1s ok"},
		"note: page counts from the producer's state records (bucket comet-state at "+w.url)
	// A chosen port (0) names no server: page 0 is asked, and the note says why.
	out = runPlanBin(t, append(noKeys, w.env...), 0, "--config",
		writeFile(t, "anyport.yaml", strings.Replace(embedded, "  listen: "+listen, "  listen: 127.0.0.1:0", 1)))
	checkPlan(t, out, map[string]string{"persons": "persons 13 page 0 now 1s 780 1560 70ms 1s 1s ok"},
		"note: no NATS URL (--nats, nats.url, $NATS_URL, or nats.listen with a fixed port)")

	// page_size lowered to 10: the last receipt's 250 rows make 25 pages,
	// still without asking COMET. Raised to 100: COMET may serve fewer, so
	// page 0 is asked (with the keys).
	// The reports are written in name order: fees, then persons.
	head, persons, ok := strings.Cut(string(b), "- name: persons")
	if !ok {
		t.Fatalf("no persons in\n%s", b)
	}
	withPageSize := func(n string) string {
		return head + "- name: persons" + strings.Replace(persons, "page_size: 20", "page_size: "+n, 1)
	}
	lowered := writeFile(t, "lowered.yaml", withPageSize("10"))
	status, out := runBin(t, noKeys, "plan", "--config", lowered, "--nats", w.url)
	if got, want := planRow(out, "persons"), "persons 25 last pass (recomputed) 1s 1500 3000 140ms 1s 1s ok"; status != 0 || got != want ||
		!strings.Contains(out, "note: persons: 25 pages at page_size 10: 250 rows at 10 a page (last pass had 13 pages at 20)") {
		t.Errorf("page_size lowered: exit %d, persons row %q, want %q\n%s", status, got, want, out)
	}
	raised := writeFile(t, "raised.yaml", withPageSize("100"))
	status, out = runBin(t, append(noKeys, w.env...), "plan", "--config", raised, "--nats", w.url)
	if got, want := planRow(out, "persons"), "persons 3 page 0 now 1s 180 360 20ms 1s 1s ok"; status != 0 || got != want ||
		planRow(out, "fees") != "fees 2 last pass 1s 120 240 20ms 1s 1s ok" {
		t.Errorf("page_size raised: exit %d, persons row %q, want %q\n%s", status, got, want, out)
	}
}
