package inspect

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/event"
	"github.com/cometstream/cometstream/internal/simulator"
)

// simRows returns a simulated report's columns and rows.
func simRows(t *testing.T, kind string, rows int, sh simulator.Shapes) ([]event.Column, [][]event.Value) {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Seed: 9, Reports: []simulator.ReportSpec{{Name: "r", Kind: kind, Rows: rows}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SetShapes("r", sh); err != nil {
		t.Fatal(err)
	}
	cols := sim.Columns("r")
	var out [][]event.Value
	for _, row := range sim.Rows("r") {
		vals := make([]event.Value, len(cols))
		for i, c := range cols {
			vals[i] = row[c.Key]
		}
		out = append(out, vals)
	}
	return cols, out
}

func TestSuggestedKeys(t *testing.T) {
	tests := []struct {
		kind string
		sh   simulator.Shapes
		want []string
	}{
		{"persons", simulator.Shapes{}, []string{"personId"}},
		// kickoff is unique too, by coincidence: an identifier pair ranks above it.
		{"matches", simulator.Shapes{}, []string{"competitionId", "matchNo"}},
		{"fees", simulator.Shapes{}, []string{"feeRef"}},
		{"events", simulator.Shapes{}, []string{"*"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			cols, rows := simRows(t, tt.kind, 300, tt.sh)
			a := Analyze(cols, rows, nil)
			if got := a.Suggested(); !slices.Equal(got, tt.want) {
				t.Errorf("suggested %v, want %v (candidates %+v)", got, tt.want, a.Candidates)
			}
			for i, c := range a.Candidates {
				if i > 0 && c.Score > a.Candidates[i-1].Score {
					t.Errorf("candidates out of order: %+v", a.Candidates)
				}
				if len(c.Columns) == 2 && tt.kind == "persons" {
					t.Errorf("pair %v listed although personId alone is a better key", c.Columns)
				}
			}
		})
	}
}

func TestRepeatedKeyIsReportedWithAnExample(t *testing.T) {
	cols, rows := simRows(t, "persons", 200, simulator.Shapes{RepeatKeys: 3})
	a := Analyze(cols, rows, []string{"personId"})
	if a.Configured == nil || a.Configured.Values != 3 || a.Configured.Rows != 6 || a.Configured.Example == "" || len(a.Configured.ExampleRows) != 2 {
		t.Fatalf("configured key check %+v", a.Configured)
	}
	if len(a.NearlyUnique) != 1 || a.NearlyUnique[0].Columns[0] != "personId" {
		t.Errorf("nearly unique %+v", a.NearlyUnique)
	}
	if slices.ContainsFunc(a.Candidates, func(c Candidate) bool { return slices.Equal(c.Columns, []string{"personId"}) }) {
		t.Error("personId listed as a candidate although it repeats")
	}
	var out bytes.Buffer
	Print(&out, Fetched{Report: "p", TotalSize: 206, Pages: 1, PagesFetched: 1, PageSize: 1000, Asked: 1000}, a, []string{"personId"})
	for _, want := range []string{"configured key [personId] repeats: [personId]: 3 values on 6 rows, e.g. " + a.Configured.Example, "nearly unique, but repeats"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestOnlyContentKeyFits(t *testing.T) {
	cols := []event.Column{{Key: "matchId", Type: event.TypeNumber}, {Key: "minute", Type: event.TypeNumber}, {Key: "playerId", Type: event.TypeNumber}}
	row := []event.Value{event.NumberValue("1"), event.NumberValue("12"), event.NumberValue("7")}
	rows := [][]event.Value{row, row, {event.NumberValue("1"), event.NumberValue("30"), event.NumberValue("7")}}
	a := Analyze(cols, rows, nil)
	if len(a.Candidates) != 0 || !slices.Equal(a.Suggested(), []string{"*"}) {
		t.Fatalf("candidates %+v", a.Candidates)
	}
	var out bytes.Buffer
	Print(&out, Fetched{Report: "e", TotalSize: 3, Pages: 1, PagesFetched: 1, PageSize: 25, Asked: 25}, a, nil)
	if !strings.Contains(out.String(), `only key: ["*"] fits`) || !strings.Contains(out.String(), `suggested key: ["*"]`) || !strings.Contains(out.String(), "configured key: none yet") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestLooksLikeID(t *testing.T) {
	for key, want := range map[string]bool{
		"personId": true, "person_id": true, "ID": true, "id": true, "feeRef": true, "clubCode": true, "matchNo": true,
		"registrationNumber": true, "uid": true, "FIFAId": true, "kickoff": false, "idle": false, "lastName": false, "video": false, "dateOfBirth": false,
	} {
		if got := looksLikeID(key); got != want {
			t.Errorf("looksLikeID(%q) = %v, want %v (words %v)", key, got, want, splitWords(key))
		}
	}
}
