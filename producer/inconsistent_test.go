package producer

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLongInconsistencyIsLoud: a report whose passes stay inconsistent
// (here a row without a key value) never gets its deletes: the count of
// such passes in a row is in its state record and a gauge, and from
// InconsistentAlarm passes on the log says so as an error. A consistent
// pass sets it back to 0.
func TestLongInconsistencyIsLoud(t *testing.T) {
	e := newPolledPersons(t, 30)
	inconsistent := func() (float64, int) {
		t.Helper()
		st, _ := e.state("persons")
		return testutil.ToFloat64(e.p.m.inconsistent.WithLabelValues("persons")), st.Inconsistent
	}
	if g, n := inconsistent(); g != 0 || n != 0 {
		t.Fatalf("after a consistent pass: gauge %v, record %d", g, n)
	}
	if err := e.sim.Poison("persons", 3, "personId", "null"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= InconsistentAlarm; i++ {
		if s := e.poll("persons"); s.Consistent || s.InvalidRows != 1 {
			t.Fatalf("pass %d: %+v, want inconsistent with an invalid row", i, s)
		}
		if g, n := inconsistent(); g != float64(i) || n != i {
			t.Fatalf("after %d inconsistent passes: gauge %v, record %d", i, g, n)
		}
		loud := strings.Count(e.logs.String(), `"level":"ERROR","msg":"no consistent pass for`)
		if want := map[bool]int{true: 1}[i >= InconsistentAlarm]; loud != want {
			t.Fatalf("after %d inconsistent passes the error was logged %d times, want %d", i, loud, want)
		}
	}
	// One more pass is a warning again, not another error.
	e.poll("persons")
	if n := strings.Count(e.logs.String(), `"level":"ERROR","msg":"no consistent pass for`); n != 1 {
		t.Fatalf("after %d inconsistent passes the error was logged %d times, want once", InconsistentAlarm+1, n)
	}
	// A restarted producer shows the count before its first pass.
	e.open(e.reportConfig("persons"))
	if g, _ := inconsistent(); g != float64(InconsistentAlarm+1) {
		t.Fatalf("after a restart the gauge is %v, want %d", g, InconsistentAlarm+1)
	}
	e.sim.Delete("persons", 1, 3) // the row without a key goes
	if s := e.poll("persons"); !s.Consistent {
		t.Fatalf("without the keyless row: %+v", s)
	}
	if g, n := inconsistent(); g != 0 || n != 0 {
		t.Fatalf("after a consistent pass again: gauge %v, record %d", g, n)
	}
}
