package producer

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometstream/cometstream/internal/comet"
	"github.com/cometstream/cometstream/internal/simulator"
)

// TestUserBudgetMetrics: the reports of one COMET user count their calls
// together, as many as COMET saw, next to the limit they share, so that
// rate(calls) / limit is the share of the user's budget in use.
func TestUserBudgetMetrics(t *testing.T) {
	e := newEnv(t, simulator.ReportSpec{Name: "players", Kind: "persons", Rows: 60}, simulator.ReportSpec{Name: "coaches", Kind: "persons", Rows: 30})
	shared := comet.NewLimiter(50)
	user := func(rc *ReportConfig) { rc.Comet.Limiter, rc.Group = shared, "sim/default" }
	e.open(e.reportConfig("players", user), e.reportConfig("coaches", user))
	e.poll("players")
	e.poll("coaches")
	e.poll("players")

	calls := testutil.ToFloat64(e.p.m.userCalls.WithLabelValues("sim/default"))
	if seen := e.sim.Stats().Users["default"].Calls; calls != float64(seen) || seen == 0 {
		t.Errorf("the user's reports counted %v calls, COMET saw %d", calls, seen)
	}
	perReport := testutil.ToFloat64(e.p.m.requests.WithLabelValues("players", "200")) + testutil.ToFloat64(e.p.m.requests.WithLabelValues("coaches", "200"))
	if calls != perReport {
		t.Errorf("the user counted %v calls, its reports %v", calls, perReport)
	}
	if limit := testutil.ToFloat64(e.p.m.userLimit.WithLabelValues("sim/default")); limit != 50 {
		t.Errorf("cometstream_user_rate_limit = %v, want the limit, 50", limit)
	}
}
