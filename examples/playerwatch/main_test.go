package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cometstream/cometstream/cometstreamtest"
	"github.com/cometstream/cometstream/event"
)

// lines hands the test each line the service prints: watch prints a line
// with each Write. It never blocks: a line past its capacity is refused,
// and a watch that prints far too much fails instead of hanging the test.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	select {
	case l <- strings.TrimSuffix(string(p), "\n"):
		return len(p), nil
	default:
		return 0, errors.New("the test's output is full: far more lines than expected")
	}
}

// TestWatchPrintsEveryUpdate runs the service against a real embedded NATS
// server fed by a real producer polling a simulated COMET, changes three
// players, and checks the service printed exactly those updates, in order.
func TestWatchPrintsEveryUpdate(t *testing.T) {
	w := cometstreamtest.New(t,
		cometstreamtest.Report{Name: "persons", Kind: cometstreamtest.Persons, Rows: 30},
		cometstreamtest.Report{Name: "fees", Kind: cometstreamtest.Fees, Rows: 10},
	)
	out := make(lines, 100) // more than the test makes updates: watch never waits
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watch(ctx, w.JetStream(), "playerwatch", "persons", out) }()

	before := w.Rows("persons")
	var want []string
	for _, i := range []int{3, 10, 21} {
		w.UpdateAt("persons", i)
		after := w.Rows("persons")[i]
		want = append(want, expected(before[i], after))
	}
	w.Update("fees", 3)    // another report: not printed
	w.Insert("persons", 1) // a created row: not printed
	w.Poll("persons")
	w.Poll("fees")

	// A sentinel update published after everything else: once it is
	// printed, nothing unwanted can still be on its way.
	first := w.Rows("persons")[0]
	w.UpdateAt("persons", 0)
	want = append(want, expected(first, w.Rows("persons")[0]))
	w.Poll("persons")
	var got []string
	timeout := time.After(20 * time.Second)
collect:
	for len(got) < len(want) {
		select {
		case line := <-out:
			got = append(got, line)
		case <-timeout:
			break collect
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
	for len(out) > 0 {
		got = append(got, <-out)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// expected is the line for an update from before to after, computed from
// the rows themselves.
func expected(before, after event.Row) string {
	var changes []string
	for _, c := range []string{"personId", "firstName", "lastName", "dateOfBirth", "gender", "nationality", "club", "photo", "status", "registered"} {
		if !before[c].Equal(after[c]) {
			changes = append(changes, fmt.Sprintf("%s %s -> %s", c, show(before[c]), show(after[c])))
		}
	}
	return "personId=" + after["personId"].Raw + ": " + strings.Join(changes, ", ")
}
