package verify

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/event"
)

func num(s string) event.Value  { return event.NumberValue(s) }
func text(s string) event.Value { return event.TextValue(s) }

var null = event.NullValue()

func TestVerifySameValue(t *testing.T) {
	tests := []struct {
		name        string
		typ         event.ColumnType
		want, got   event.Value
		same, exact bool // inexact and exact comparisons
	}{
		{"same number", event.TypeNumber, num("125.50"), num("125.50"), true, true},
		{"trailing zero", event.TypeAmount, num("125.50"), num("125.5"), true, true},
		{"exponent form", event.TypeNumber, num("1.5e3"), num("1500"), true, true},
		{"SQLite's 15 digits", event.TypeNumber, num("12345678901234567.89"), num("1.2345678901234568e+16"), true, false},
		{"a real change", event.TypeNumber, num("125.50"), num("125.51"), false, false},
		{"a small real change", event.TypeNumber, num("0.001"), num("0.002"), false, false},
		{"last digit of 20", event.TypeNumber, num("12345678901234567890"), num("12345678901234567891"), true, false},
		{"numeric text in a text column", event.TypeNumber, num("100"), text("100"), true, true},
		{"number as text is not a string", event.TypeString, text("007"), num("7"), false, false},
		{"text exactly", event.TypeString, text("Bale"), text("Bale"), true, true},
		{"text with a trailing space", event.TypeString, text("Bale"), text("Bale "), false, false},
		{"text case", event.TypeString, text("Bale"), text("bale"), false, false},
		{"date", event.TypeDate, text("2002-07-24"), text("2002-07-24"), true, true},
		{"datetime milliseconds", event.TypeDateTime, text("2026-03-31T07:49:21.680Z"), text("2026-03-31T07:49:21.68Z"), false, false},
		{"null and null", event.TypeNumber, null, null, true, true},
		{"null and empty text", event.TypeString, null, text(""), false, false},
		{"null and zero", event.TypeNumber, num("0"), null, false, false},
		{"not a number in a numeric column", event.TypeNumber, num("1"), text("NaN"), false, false},
		{"huge exponent, same literal", event.TypeNumber, num("1e999999999"), num("1e999999999"), true, true},
		{"huge exponent, other literal", event.TypeNumber, num("1e999999999"), num("2e999999999"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SameValue(tt.typ, tt.want, tt.got, false); got != tt.same {
				t.Errorf("SameValue(%s, %+v, %+v) = %v, want %v", tt.typ, tt.want, tt.got, got, tt.same)
			}
			if got := SameValue(tt.typ, tt.want, tt.got, true); got != tt.exact {
				t.Errorf("exact SameValue(%s, %+v, %+v) = %v, want %v", tt.typ, tt.want, tt.got, got, tt.exact)
			}
		})
	}
}

// render writes differences as the command prints them, for comparing.
func render(diffs []Difference) string {
	var out []string
	for _, d := range diffs {
		s := d.Kind.String() + " " + d.Key
		for _, c := range d.Columns {
			s += fmt.Sprintf(" %s=%s/%s", c.Column, c.Database.AppendJSON(nil), c.Snapshot.AppendJSON(nil))
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestVerifyCompare(t *testing.T) {
	persons := Layout{Key: []string{"personId"}, Columns: []event.Column{
		{Key: "personId", Type: event.TypeNumber}, {Key: "name", Type: event.TypeString}, {Key: "fee", Type: event.TypeAmount},
	}, TokenColumn: "_cometstream_key"}
	person := func(id, name, fee string) event.Row {
		return event.Row{"personId": num(id), "name": text(name), "fee": num(fee)}
	}
	matches := Layout{Key: []string{"competitionId", "matchNo"}, Columns: []event.Column{
		{Key: "competitionId", Type: event.TypeNumber}, {Key: "matchNo", Type: event.TypeString}, {Key: "venue", Type: event.TypeString},
	}}
	goals := Layout{Key: []string{event.ContentKey}, Columns: []event.Column{
		{Key: "minute", Type: event.TypeNumber}, {Key: "player", Type: event.TypeString},
	}, TokenColumn: "_cometstream_key"}
	goal := func(tok, minute, player string) event.Row {
		return event.Row{"_cometstream_key": text(tok), "minute": num(minute), "player": text(player)}
	}
	tests := []struct {
		name   string
		layout Layout
		want   map[string]event.Row
		got    []event.Row
		diffs  string
		rows   int
	}{
		{
			name: "equal", layout: persons,
			want: map[string]event.Row{"1": person("1", "Bale", "10.50"), "2": person("2", "Ramsey", "7")},
			got:  []event.Row{person("2", "Ramsey", "7"), person("1", "Bale", "10.5")},
			rows: 2,
		},
		{
			name: "missing, extra and changed, named by key", layout: persons,
			want:  map[string]event.Row{"1": person("1", "Bale", "10.50"), "2": person("2", "Ramsey", "7"), "3": person("3", "Allen", "1")},
			got:   []event.Row{person("1", "Bale", "10.50"), person("3", "Allen-Jones", "2"), person("4", "Fishlock", "1")},
			diffs: `missing 2; extra 4; changed 3 fee=2/1 name="Allen-Jones"/"Allen"`,
			rows:  4,
		},
		{
			name: "a column the snapshot row lacks is null", layout: persons,
			want:  map[string]event.Row{"1": {"personId": num("1"), "name": text("Bale")}, "2": {"personId": num("2"), "name": text("Ramsey")}},
			got:   []event.Row{{"personId": num("1"), "name": text("Bale"), "fee": null}, {"personId": num("2"), "name": text("Ramsey"), "fee": num("3")}},
			diffs: `changed 2 fee=3/null`,
			rows:  2,
		},
		{
			name: "a column the report dropped is not compared", layout: persons,
			want: map[string]event.Row{"1": person("1", "Bale", "1")},
			got:  []event.Row{{"personId": num("1"), "name": text("Bale"), "fee": num("1"), "club": text("Real")}},
			rows: 1,
		},
		{
			name: "a column the snapshot row has beyond the layout is compared", layout: persons,
			want:  map[string]event.Row{"1": {"personId": num("1"), "name": text("Bale"), "fee": num("1"), "referee": text("Kavanagh")}},
			got:   []event.Row{person("1", "Bale", "1")},
			diffs: `changed 1 referee=null/"Kavanagh"`,
			rows:  1,
		},
		{
			name: "numeric keys match by value", layout: persons,
			want: map[string]event.Row{"7": person("7", "Bale", "1"), "8": person("8.0", "Joe", "1")},
			// A key column SQLite created as TEXT gives its numbers as text.
			got:  []event.Row{{"personId": text("7"), "name": text("Bale"), "fee": num("1")}, person("8", "Joe", "1")},
			rows: 2,
		},
		{
			name: "composite key; an extra row's key is its token", layout: matches,
			want: map[string]event.Row{
				"1/A": {"competitionId": num("1"), "matchNo": text("A"), "venue": text("Cardiff")},
				"1/B": {"competitionId": num("1"), "matchNo": text("B"), "venue": text("Wrexham")},
			},
			got: []event.Row{
				{"competitionId": num("1"), "matchNo": text("A"), "venue": text("Cardiff")},
				{"competitionId": num("1"), "matchNo": text("B"), "venue": text("Swansea")},
				{"competitionId": num("1"), "matchNo": text("C 2"), "venue": text("Newport")},
			},
			diffs: `extra 1/=QyAy; changed 1/B venue="Swansea"/"Wrexham"`,
			rows:  3,
		},
		{
			name: "text keys match exactly", layout: matches,
			want:  map[string]event.Row{"1/a": {"competitionId": num("1"), "matchNo": text("a"), "venue": null}},
			got:   []event.Row{{"competitionId": num("1"), "matchNo": text("A"), "venue": null}},
			diffs: `missing 1/a; extra 1/A`,
			rows:  2,
		},
		{
			name: "content keyed: identical rows are distinct, matched by token", layout: goals,
			want: map[string]event.Row{
				"h01":   {"minute": num("12"), "player": text("Bale")},
				"h01-2": {"minute": num("12"), "player": text("Bale")},
				"h02":   {"minute": num("80"), "player": text("James")},
			},
			got:   []event.Row{goal("h01", "12", "Bale"), goal("h02", "80", "James"), goal("h03", "80", "James")},
			diffs: `missing h01-2; extra h03`,
			rows:  4,
		},
		{
			name: "content keyed: a row changed behind the sink's back", layout: goals,
			want:  map[string]event.Row{"h01": {"minute": num("12"), "player": text("Bale")}},
			got:   []event.Row{goal("h01", "13", "Bale")},
			diffs: `changed h01 minute=13/12`,
			rows:  1,
		},
		{
			name: "both empty", layout: persons, rows: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs, rows := Compare(tt.layout, tt.want, tt.got)
			if got := render(diffs); got != tt.diffs {
				t.Errorf("differences:\n got %s\nwant %s", got, tt.diffs)
			}
			if rows != tt.rows {
				t.Errorf("%d rows compared, want %d", rows, tt.rows)
			}
		})
	}
}

func TestVerifyNumberKey(t *testing.T) {
	for lit, want := range map[string]string{
		"7": "7", "7.0": "7", "1e3": "1000", "-0": "0", "1.50": "1.5", "0.1": "0.1",
		"9007199254740993":     "9007199254740993", // exact past 2^53
		"12345678901234567890": "1.23456789012346e+19",
		"1e400":                "1e400",
	} {
		if got := numberKey(lit); got != want {
			t.Errorf("numberKey(%s) = %s, want %s", lit, got, want)
		}
	}
}

// TestVerifyCompareKeyValues: a difference carries the key values, the
// snapshot's for a missing row and the database's for an extra one.
func TestVerifyCompareKeyValues(t *testing.T) {
	l := Layout{Key: []string{"feeRef"}, Columns: []event.Column{{Key: "feeRef", Type: event.TypeString}, {Key: "amount", Type: event.TypeAmount}}}
	diffs, _ := Compare(l,
		map[string]event.Row{event.JoinToken("FEE 1"): {"feeRef": text("FEE 1"), "amount": num("1")}},
		[]event.Row{{"feeRef": text("FEE 2"), "amount": num("1")}})
	if len(diffs) != 2 || diffs[0].Kind != Missing || diffs[0].KeyValues["feeRef"].Raw != "FEE 1" ||
		diffs[1].Kind != Extra || diffs[1].Key != event.JoinToken("FEE 2") || diffs[1].KeyValues["feeRef"].Raw != "FEE 2" || len(diffs[1].KeyValues) != 1 {
		t.Errorf("differences %+v, want FEE 1 missing and FEE 2 extra, with their key values", diffs)
	}
}
