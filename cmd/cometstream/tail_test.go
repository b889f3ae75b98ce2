package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/event"
)

// TestPrintHumanHeldPhases: a held event reads as what its phase says,
// not "DELETES HELD" for a release or the end of a hold.
func TestPrintHumanHeldPhases(t *testing.T) {
	for _, tc := range []struct {
		phase    event.HoldPhase
		want     string
		notWants string
	}{
		{event.HoldStarted, "fees DELETES HELD 40 of 50 rows would be deleted", ""},
		{"", "fees DELETES HELD 40 of 50 rows would be deleted", ""}, // producers from before phases
		{event.HoldReleased, "fees deletes released on the operator's release: 40 of 50 rows deleted", "HELD"},
		{event.HoldEnded, "fees hold ended under the threshold: 40 of 50 rows deleted", "HELD"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			var b strings.Builder
			printHuman(&b, &event.Event{Time: time.Now(), Held: &event.Held{Report: "fees", WouldDelete: 40, RowsBefore: 50, Threshold: 0.5, Phase: tc.phase}}, false)
			if got := b.String(); !strings.Contains(got, tc.want) || tc.notWants != "" && strings.Contains(got, tc.notWants) {
				t.Errorf("phase %q printed %q, want %q", tc.phase, got, tc.want)
			}
		})
	}
}
