package producer

import (
	"testing"
	"time"
)

func TestWatchSaysWhenAReportStalls(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	const passStall = 5 * time.Minute
	var w watch
	steps := []struct {
		name    string
		do      func()
		at      time.Duration
		stalled bool
		changed bool
	}{
		{"no loop: never stalled", func() {}, time.Hour, false, false},
		{"waiting, not yet due", func() { w.begin(); w.waiting(t0.Add(time.Minute)) }, 30 * time.Second, false, false},
		{"due, within the grace", func() {}, time.Minute + 20*time.Second, false, false},
		{"overdue past the grace", func() {}, time.Minute + stallGrace + time.Second, true, true},
		{"still overdue: no change", func() {}, 2 * time.Minute, true, false},
		{"the pass starts", func() { w.polling(t0.Add(2 * time.Minute)) }, 2 * time.Minute, false, true},
		{"a page arrives", func() { w.alive(t0.Add(4 * time.Minute)) }, 8 * time.Minute, false, false},
		{"no page for too long", func() {}, 4*time.Minute + passStall + time.Second, true, true},
		{"the loop ends (lease lost)", func() { w.end() }, time.Hour, false, true},
	}
	for _, s := range steps {
		s.do()
		stalled, changed, _ := w.check(t0.Add(s.at), passStall)
		if stalled != s.stalled || changed != s.changed {
			t.Errorf("%s: stalled %v changed %v, want %v %v", s.name, stalled, changed, s.stalled, s.changed)
		}
	}
}
