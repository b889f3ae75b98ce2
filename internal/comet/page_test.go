package comet

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/internal/event"
	"github.com/cometstream/cometstream/internal/jsonscan"
)

func readPage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pages", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodePage(t *testing.T) {
	p, err := DecodePage(readPage(t, "persons.json"), 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 2 || p.TotalSize != 2 || p.LastPage != 0 || p.ReportName != "Players" {
		t.Fatalf("page %+v", p)
	}
	s, _ := event.NewSchema(p.Columns)
	want := []string{
		`{"dateOfBirth":"2002-07-24","fee":125.50,"lastName":"Rushesha","personId":191579,"photo":"https://comet.example/p/191579.jpg","registered":"2026-03-31T07:49:21.680Z"}`,
		`{"dateOfBirth":null,"fee":12345678901234567890.10,"lastName":"Đurić 🏴","personId":191580,"photo":null,"registered":"2026-03-31T07:49:21.680Z"}`,
	}
	for i, w := range want {
		if got := string(s.AppendRow(nil, p.Row(i))); got != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, w)
		}
	}
	if len(p.RowErrors()) != 0 {
		t.Errorf("row errors %v", p.RowErrors())
	}
	for _, name := range []string{"empty.json", "nested.json"} {
		if _, err := DecodePage(readPage(t, name), 0, 25); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// page builds a page body from pieces, for the table tests.
func page(results string, mods ...func(map[string]any)) []byte {
	m := map[string]any{
		"columnTypes": []string{"NUMBER", "DATE"}, "columnNames": []string{"Id", "Born"}, "columnKeys": []string{"id", "born"},
		"totalSize": 2, "page": 0, "pageSize": 25, "lastPage": 0, "apiKeyRequestURL": "https://x/?API_KEY=secret-key-123",
	}
	for _, f := range mods {
		f(m)
	}
	b, _ := json.Marshal(m)
	s := string(b)
	return []byte(strings.Replace(s, "{", `{"results":`+results+",", 1))
}

func TestDecodePageRejects(t *testing.T) {
	ok := `[{"id":1,"born":0},{"id":2,"born":null}]`
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	tests := []struct {
		name  string
		body  []byte
		class error
		says  string
	}{
		{"truncated", page(ok)[:60], ErrTransient, "unexpected end"},
		{"html", []byte("<html>Bad Gateway</html>"), ErrTransient, "malformed"},
		{"trailing data", append(page(ok), []byte(" {}")...), ErrTransient, "after the top-level"},
		{"key count", page(ok, set("columnKeys", []string{"id"})), ErrInvalidResponse, "1 column keys, 2 names, 2 types"},
		{"unknown type", page(ok, set("columnTypes", []string{"NUMBER", "BLOB"})), ErrInvalidResponse, `unknown type "BLOB"`},
		{"duplicate column", page(ok, set("columnKeys", []string{"id", "id"})), ErrInvalidResponse, "appears twice"},
		{"page echo", page(ok, set("page", 3)), ErrInvalidResponse, "page is 3, requested 0"},
		{"page size echo", page(ok, set("pageSize", 1000)), ErrInvalidResponse, "pageSize is 1000"},
		{"last page", page(ok, set("lastPage", 4)), ErrInvalidResponse, "lastPage is 4"},
		{"missing results", page(ok, del("totalSize")), ErrInvalidResponse, "missing totalSize"},
		{"too many rows", page(`[` + strings.Repeat(`{"id":1},`, 25) + `{"id":2}]`), ErrInvalidResponse, "26 rows"},
		{"unknown column", page(`[{"id":1,"shoeSize":44}]`), ErrInvalidResponse, `"shoeSize" is not in columnKeys`},
		{"repeated column", page(`[{"id":1,"id":2}]`), ErrInvalidResponse, "appears twice"},
		{"nested value", page(`[{"id":{"x":1}}]`), ErrInvalidResponse, "nested object"},
		{"row not object", page(`[1]`), ErrInvalidResponse, "not an object"},
		{"results not array", page(`{}`), ErrInvalidResponse, "not an array"},
		{"total not integer", page(ok, set("totalSize", 1.5)), ErrInvalidResponse, "not an integer"},
		{"deep", []byte(`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`), ErrInvalidResponse, "deeper than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePage(tt.body, 0, 25)
			if !errors.Is(err, tt.class) {
				t.Fatalf("error %v, want class %v", err, tt.class)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			if strings.Contains(err.Error(), "secret-key-123") {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		typ    event.ColumnType
		in     jsonscan.Scalar
		want   event.Value
		reason bool
	}{
		{event.TypeNumber, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "191579"}, event.NumberValue("191579"), false},
		{event.TypeAmount, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "125.50"}, event.NumberValue("125.50"), false},
		{event.TypeAmount, jsonscan.Scalar{Kind: jsonscan.KindString, Text: " 99.90 "}, event.NumberValue("99.90"), false},
		{event.TypeNumber, jsonscan.Scalar{Kind: jsonscan.KindString, Text: ""}, event.Value{}, false},
		{event.TypeNumber, jsonscan.Scalar{Kind: jsonscan.KindString, Text: "N/A"}, event.Value{}, true},
		{event.TypeNumber, jsonscan.Scalar{Kind: jsonscan.KindBool, Text: "true"}, event.Value{}, true},
		{event.TypeString, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "007"}, event.TextValue("007"), false},
		{event.TypeString, jsonscan.Scalar{Kind: jsonscan.KindBool, Text: "false"}, event.TextValue("false"), false},
		{event.TypeImageLink, jsonscan.Scalar{Kind: jsonscan.KindString, Text: "https://x/y.png"}, event.TextValue("https://x/y.png"), false},
		{event.TypeDate, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "1027468800000"}, event.TextValue("2002-07-24"), false},
		{event.TypeDate, jsonscan.Scalar{Kind: jsonscan.KindString, Text: "2002-07-24"}, event.TextValue("2002-07-24"), false},
		{event.TypeDate, jsonscan.Scalar{Kind: jsonscan.KindString, Text: "yesterday"}, event.Value{}, true},
		{event.TypeDateTime, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "1774943361680"}, event.TextValue("2026-03-31T07:49:21.680Z"), false},
		{event.TypeDateTime, jsonscan.Scalar{Kind: jsonscan.KindString, Text: "2026-03-31T09:49:21.68+02:00"}, event.TextValue("2026-03-31T07:49:21.680Z"), false},
		{event.TypeDateTime, jsonscan.Scalar{Kind: jsonscan.KindNumber, Text: "1e300"}, event.Value{}, true},
		{event.TypeDate, jsonscan.Scalar{Kind: jsonscan.KindNull, Text: ""}, event.Value{}, false},
	}
	for _, tt := range tests {
		got, reason := convert(tt.typ, tt.in)
		if (reason != "") != tt.reason || !got.Equal(tt.want) {
			t.Errorf("convert(%s, %v) = %+v, %q; want %+v, reason %v", tt.typ, tt.in, got, reason, tt.want, tt.reason)
		}
	}
}

func TestUnconvertibleValueMarksRowNotPage(t *testing.T) {
	p, err := DecodePage(page(`[{"id":1,"born":"soon"},{"id":2,"born":0}]`), 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	errs := p.RowErrors()
	if len(errs) != 1 || errs[0].Row != 0 || errs[0].Column != "born" {
		t.Fatalf("row errors %v", errs)
	}
	if p.Row(1)[1].Raw != "1970-01-01" {
		t.Errorf("second row converted to %+v", p.Row(1))
	}
}

// FuzzDecodePage: malformed input gives an error, never a panic, and a page
// that decodes is internally consistent.
func FuzzDecodePage(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/pages/*.json")
	for _, p := range seeds {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add(page(`[{"id":1,"born":"soon"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePage(body, 0, 25)
		if err != nil {
			if !errors.Is(err, ErrTransient) && !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.Len() > 25 {
			t.Fatalf("%d rows on a page of 25", p.Len())
		}
		s, err := event.NewSchema(p.Columns)
		if err != nil {
			t.Fatalf("accepted invalid columns: %v", err)
		}
		for i := 0; i < p.Len(); i++ {
			row := s.AppendRow(nil, p.Row(i))
			if !json.Valid(row) {
				t.Fatalf("row %d encodes as invalid JSON: %s", i, row)
			}
		}
	})
}

func BenchmarkDecodePage1000Rows(b *testing.B) {
	body := simulatedPage(b, 1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecodePage(body, 0, 1000)
		if err != nil || p.Len() != 1000 {
			b.Fatal(p, err)
		}
	}
}

func TestLimits(t *testing.T) {
	big := strings.Repeat("x", MaxCellBytes+1)
	p, err := DecodePage(page(`[{"id":1,"born":0},{"id":2,"born":"`+big+`"}]`), 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	if errs := p.RowErrors(); len(errs) != 1 || errs[0].Row != 1 || !strings.Contains(errs[0].Reason, "262145 bytes is longer than the 262144-byte limit") {
		t.Errorf("row errors %v", errs)
	}
	longKey := strings.Repeat("k", MaxKeyBytes+1)
	_, err = DecodePage(page(`[]`, func(m map[string]any) {
		m["columnKeys"] = []string{"id", longKey}
		m["totalSize"] = 0
	}), 0, 25)
	if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "column key of 1025 bytes") {
		t.Errorf("long column key: %v", err)
	}
}
