package event

import (
	"strings"
	"testing"
)

func TestTokenPart(t *testing.T) {
	tests := []struct{ in, want string }{
		{"191579", "191579"},
		{"-5", "-5"},
		{"abc_DEF-9", "abc_DEF-9"},
		{"FEE 2026/000001 B/2", "=RkVFIDIwMjYvMDAwMDAxIEIvMg"},
		{"1.5", "=MS41"},
		{"Đurić", "=xJB1cmnEhw"},
		{"", "="},
		{"a.b", "=YS5i"},
		{"*", "=Kg"},
		{">", "=Pg"},
		{strings.Repeat("a", 128), strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), "=" + strings.Repeat("YWFh", 43)},
	}
	for _, tt := range tests {
		if got := TokenPart(tt.in); got != tt.want {
			t.Errorf("TokenPart(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestKeyerTokens(t *testing.T) {
	s, err := NewSchema([]Column{
		{Key: "competitionId", Type: TypeNumber}, {Key: "matchNo", Type: TypeNumber},
		{Key: "kickoff", Type: TypeDateTime}, {Key: "ref", Type: TypeString},
	})
	if err != nil {
		t.Fatal(err)
	}
	row := []Value{NumberValue("9001"), NumberValue("45"), TextValue("2026-03-01T15:00:00.000Z"), TextValue("A/B")}
	tests := []struct {
		key  []string
		want string
	}{
		{[]string{"competitionId", "matchNo"}, "9001/45"},
		{[]string{"matchNo", "competitionId"}, "45/9001"},
		{[]string{"kickoff"}, "=MjAyNi0wMy0wMVQxNTowMDowMC4wMDBa"},
		{[]string{"ref", "matchNo"}, "=QS9C/45"},
	}
	for _, tt := range tests {
		k, err := NewKeyer(s, tt.key)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := k.Token(row, Hash{})
		if err != nil || tok != tt.want {
			t.Errorf("key %v: token %q, %v; want %q", tt.key, tok, err, tt.want)
		}
		parts, err := ParseToken(tok)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", tok, err)
		}
		for i, col := range tt.key {
			if want := row[s.Index(col)].Raw; parts[i] != want {
				t.Errorf("ParseToken(%q)[%d] = %q, want %q", tok, i, parts[i], want)
			}
		}
	}
	if _, err := NewKeyer(s, []string{"personId"}); err == nil || !strings.Contains(err.Error(), "personId") {
		t.Errorf("missing key column: error %v should name it", err)
	}
	k, _ := NewKeyer(s, []string{"ref"})
	if _, err := k.Token([]Value{{}, {}, {}, {}}, Hash{}); err == nil {
		t.Error("null key value: no error")
	}
	if got := string(k.AppendKey(nil, row)); got != `{"ref":"A/B"}` {
		t.Errorf("AppendKey = %s", got)
	}
}

func TestContentToken(t *testing.T) {
	h := RowHash([]byte(`{"a":1}`))
	one, two := ContentToken(h, 1), ContentToken(h, 2)
	if len(one) != 33 || one[0] != 'h' || two != one+"-2" {
		t.Errorf("content tokens %q, %q", one, two)
	}
	if TokenPart(one) != one {
		t.Errorf("content token %q is not a plain token", one)
	}
}

func FuzzTokenRoundTrip(f *testing.F) {
	f.Add("191579", "FEE 2026/1 A")
	f.Add("", "=")
	f.Fuzz(func(t *testing.T, a, b string) {
		tok := TokenPart(a) + "/" + TokenPart(b)
		if strings.ContainsAny(tok, ". *>\t\n") {
			t.Fatalf("token %q contains a subject metacharacter", tok)
		}
		parts, err := ParseToken(tok)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", tok, err)
		}
		if len(parts) != 2 || parts[0] != a || parts[1] != b {
			t.Fatalf("round trip (%q, %q) -> %q -> %q", a, b, tok, parts)
		}
	})
}

func TestJoinTokenRoundTrips(t *testing.T) {
	for _, texts := range [][]string{{"191579"}, {"9001", "45"}, {"FEE 2026/000001 B/2"}, {"Đurić", "a.b", "*"}, {"2026-03-01T15:00:00.000Z"}, {""}} {
		tok := JoinToken(texts...)
		got, err := ParseToken(tok)
		if err != nil || strings.Join(got, "\x00") != strings.Join(texts, "\x00") {
			t.Errorf("JoinToken(%q) = %q, parses as %q, %v", texts, tok, got, err)
		}
		if strings.Count(tok, "/") != len(texts)-1 {
			t.Errorf("JoinToken(%q) = %q: one part per value", texts, tok)
		}
	}
	if JoinToken("9001", "45") != "9001/45" {
		t.Error("plain parts stand as they are")
	}
}

func TestParseSubject(t *testing.T) {
	tests := []struct {
		subj string
		want Subject
		ok   bool
	}{
		{"comet.persons.row.updated.191579", Subject{Report: "persons", Row: true, Op: OpUpdated, Token: "191579"}, true},
		{"comet.events.row.created.h0123456789abcdef0123456789abcdef-2", Subject{Report: "events", Row: true, Op: OpCreated, Token: "h0123456789abcdef0123456789abcdef-2"}, true},
		{"comet.matches.row.deleted.9001/45", Subject{Report: "matches", Row: true, Op: OpDeleted, Token: "9001/45"}, true},
		{"comet.fees.report.failed", Subject{Report: "fees", Kind: KindFailed}, true},
		{"comet.fees.report.exploded", Subject{}, false},
		{"comet.fees.row.exploded.1", Subject{}, false},
		{"comet.fees.row.created.a b", Subject{}, false},
		{"comet.fees.row.created", Subject{}, false},
		{"comet.Fees.report.synced", Subject{}, false},
		{"other.fees.report.synced", Subject{}, false},
		{"comet.fees.report.synced.x", Subject{}, false},
	}
	for _, tt := range tests {
		got, err := ParseSubject("comet", tt.subj)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v, ok %v", tt.subj, got, err, tt.want, tt.ok)
		}
		if tt.ok {
			var rebuilt string
			if got.Row {
				rebuilt = RowSubject("comet", got.Report, got.Op, got.Token)
			} else {
				rebuilt = ReportSubject("comet", got.Report, got.Kind)
			}
			if rebuilt != tt.subj {
				t.Errorf("%q rebuilt as %q", tt.subj, rebuilt)
			}
		}
	}
}
