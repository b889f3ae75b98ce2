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
