package webhook

import (
	"errors"
	"testing"
)

var errTest = errors.New("bucket unavailable")

// TestDisablingIsClaimedOnce: of the deliveries in flight when an endpoint
// answers 410, only the first disables it (writes the record and logs);
// the others find it claimed, written but not yet seen, or disabled. After
// it is enabled again, a new 410 disables it again.
func TestDisablingIsClaimedOnce(t *testing.T) {
	s := &endpointState{known: true, wake: make(chan struct{})}
	d := Disablement{Endpoint: "crm", Status: 410}
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"first 410", nil, true},
		{"a 410 while the record is written", nil, false},
		{"a 410 once written, before the watch saw it", func() { s.disabled(d, 7, nil) }, false},
		{"a 410 once the watch saw it", func() { s.load(&d, 7) }, false},
		{"a 410 after enable", func() { s.load(nil, 8) }, true},
		{"a 410 once recorded in this process only", func() { s.disabled(d, 0, errTest) }, false},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		if got := s.disabling(); got != st.want {
			t.Errorf("%s: disabling() = %v, want %v", st.name, got, st.want)
		}
	}
}
