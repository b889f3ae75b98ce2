package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x1f\x7f", "<html>&amp;", "Đorđe Ødegaard Llŷr", "\u2028\u2029", "bad \xff utf8", "emoji 🏴󠁧󠁢󠁷󠁬󠁳󠁿"} {
		t.Run(s, func(t *testing.T) { checkAppendString(t, s) })
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("Rushesha-Banda")
	f.Add("a\"b\\c\n\x01\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) { checkAppendString(t, s) })
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	got := AppendString(nil, s)
	if string(got) != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
		t.Fatalf("AppendString(%q) = %s, want %s", s, got, want.Bytes())
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("output %s is not JSON: %v", got, err)
	}
	if utf8.ValidString(s) && back != s {
		t.Fatalf("round trip of %q gave %q", s, back)
	}
}

func TestValidNumberAgreesWithJSON(t *testing.T) {
	for _, s := range []string{"0", "-0", "191579", "125.50", "1e10", "1E+2", "-1.5e-3", "", "-", "01", "1.", ".5", "1e", "+1", "0x10", "1_000", "NaN", " 1", "1 "} {
		var v any
		want := json.Unmarshal([]byte(s), &v) == nil && len(s) > 0 && s[0] != ' ' && s[len(s)-1] != ' '
		if _, isNum := v.(float64); !isNum {
			want = false
		}
		if got := ValidNumber(s); got != want {
			t.Errorf("ValidNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValueJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Value
	}{
		{`null`, Value{}},
		{`125.50`, NumberValue("125.50")},
		{`12345678901234567890123`, NumberValue("12345678901234567890123")},
		{`"2002-07-24"`, TextValue("2002-07-24")},
		{`"Llŷr"`, TextValue("Llŷr")},
	}
	for _, tt := range tests {
		var v Value
		if err := json.Unmarshal([]byte(tt.in), &v); err != nil {
			t.Fatalf("unmarshal %s: %v", tt.in, err)
		}
		if !v.Equal(tt.want) {
			t.Errorf("unmarshal %s = %+v, want %+v", tt.in, v, tt.want)
		}
		out, err := json.Marshal(v)
		if err != nil || string(out) != tt.in {
			t.Errorf("marshal %+v = %s, %v; want %s", v, out, err, tt.in)
		}
	}
	for _, bad := range []string{`true`, `{}`, `[1]`, `01`} {
		var v Value
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("unmarshal %s: no error, got %+v", bad, v)
		}
	}
}

func TestParseMillis(t *testing.T) {
	tests := []struct {
		lit      string
		date, dt string
		bad      bool
	}{
		{lit: "1027468800000", date: "2002-07-24", dt: "2002-07-24T00:00:00.000Z"},
		{lit: "0", date: "1970-01-01", dt: "1970-01-01T00:00:00.000Z"},
		{lit: "-86400000", date: "1969-12-31", dt: "1969-12-31T00:00:00.000Z"},
		{lit: "1774943361680", date: "2026-03-31", dt: "2026-03-31T07:49:21.680Z"},
		{lit: "1.0274688e12", date: "2002-07-24", dt: "2002-07-24T00:00:00.000Z"},
		{lit: "1.5", bad: true},
		{lit: "1e300", bad: true},
		{lit: "253402300800000", bad: true}, // year 10000
	}
	for _, tt := range tests {
		ms, err := ParseMillis(tt.lit)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseMillis(%s) = %d, want an error", tt.lit, ms)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseMillis(%s): %v", tt.lit, err)
		}
		if got := FormatDate(ms); got != tt.date {
			t.Errorf("FormatDate(%s) = %s, want %s", tt.lit, got, tt.date)
		}
		if got := FormatDateTime(ms); got != tt.dt {
			t.Errorf("FormatDateTime(%s) = %s, want %s", tt.lit, got, tt.dt)
		}
	}
}

// TestCivilFormatAgreesWithTime checks the fast date formatting against the
// time package across the whole supported range.
func TestCivilFormatAgreesWithTime(t *testing.T) {
	check := func(ms int64) {
		tm := time.UnixMilli(ms).UTC()
		if got, want := FormatDate(ms), tm.Format(DateLayout); got != want {
			t.Fatalf("FormatDate(%d) = %s, want %s", ms, got, want)
		}
		if got, want := FormatDateTime(ms), tm.Format(DateTimeLayout); got != want {
			t.Fatalf("FormatDateTime(%d) = %s, want %s", ms, got, want)
		}
	}
	for _, ms := range []int64{minMillis, maxMillis, 0, -1, 1, 86399999, 86400000, -86400000, -86400001, 951782400000, 4107542400000} {
		check(ms)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		check(minMillis + r.Int64N(maxMillis-minMillis))
	}
}

func FuzzCivilFormat(f *testing.F) {
	f.Add(int64(1027468800000))
	f.Fuzz(func(t *testing.T, ms int64) {
		if ms < minMillis || ms > maxMillis {
			return
		}
		if got, want := FormatDateTime(ms), time.UnixMilli(ms).UTC().Format(DateTimeLayout); got != want {
			t.Fatalf("FormatDateTime(%d) = %s, want %s", ms, got, want)
		}
	})
}
