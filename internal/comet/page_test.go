package comet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/event"
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
	if len(p.CellErrors()) != 0 || len(p.Undeclared) != 0 {
		t.Errorf("cell errors %v, undeclared %v", p.CellErrors(), p.Undeclared)
	}
	for _, name := range []string{"empty.json", "nested.json"} {
		if _, err := DecodePage(readPage(t, name), 0, 25); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDecodePageLastPage: lastPage is checked when it is a number, and
// computed from totalSize and pageSize when it is a boolean, null or
// missing; the pages of a pass follow it either way.
func TestDecodePageLastPage(t *testing.T) {
	rows := `[{"id":1,"born":0},{"id":2,"born":null}]`
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for name, mod := range map[string]func(map[string]any){
		"number": set("lastPage", 4), "true": set("lastPage", true), "false": set("lastPage", false),
		"null": set("lastPage", nil), "missing": func(m map[string]any) { delete(m, "lastPage") },
	} {
		p, err := DecodePage(page(rows, set("totalSize", 101), mod), 0, 25)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.LastPage != 4 {
			t.Errorf("%s: lastPage %d, want 4 (101 rows at 25 a page)", name, p.LastPage)
		}
	}
	if _, err := DecodePage(page(rows, set("totalSize", 101), set("lastPage", 3)), 0, 25); !errors.Is(err, ErrInvalidResponse) {
		t.Errorf("a wrong lastPage: %v, want an invalid response", err)
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
		{"NUL in a column key", page(ok, set("columnKeys", []string{"id", "bo\x00rn"})), ErrInvalidResponse, "holds a NUL byte"},
		{"page echo", page(ok, set("page", 3)), ErrInvalidResponse, "page is 3, requested 0"},
		{"page size echo", page(ok, set("pageSize", 1000)), ErrInvalidResponse, "pageSize is 1000"},
		{"page size zero", page(ok, set("pageSize", 0)), ErrInvalidResponse, "pageSize is 0"},
		{"rows over served size", page(`[{"id":1},{"id":2},{"id":3}]`, set("pageSize", 2), set("totalSize", 3), set("lastPage", 1)), ErrInvalidResponse, "3 rows on a page of 2"},
		{"last page at served size", page(ok, set("pageSize", 1), set("lastPage", 0)), ErrInvalidResponse, "at 1 a page makes 1"},
		{"last page", page(ok, set("lastPage", 4)), ErrInvalidResponse, "lastPage is 4"},
		{"missing results", page(ok, del("totalSize")), ErrInvalidResponse, "missing totalSize"},
		{"too many rows", page(`[` + strings.Repeat(`{"id":1},`, 25) + `{"id":2}]`), ErrInvalidResponse, "26 rows"},
		{"repeated column", page(`[{"id":1,"id":2}]`), ErrInvalidResponse, "appears twice"},
		{"nested too deep in a cell", page(`[{"id":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]`), ErrInvalidResponse, "deeper than 64"},
		{"row not object", page(`[1]`), ErrInvalidResponse, "not an object"},
		{"results not array", page(`{}`), ErrInvalidResponse, "not an array"},
		{"total not integer", page(ok, set("totalSize", 1.5)), ErrInvalidResponse, "not an integer"},
		{"total a boolean", page(ok, set("totalSize", true)), ErrInvalidResponse, `field "totalSize": a boolean, not a number`},
		{"page a string", page(ok, set("page", "0")), ErrInvalidResponse, `field "page": a string, not a number`},
		{"page size null", page(ok, set("pageSize", nil)), ErrInvalidResponse, `field "pageSize": a null, not a number`},
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

func TestUnconvertibleCellIsNullAndKeepsItsRow(t *testing.T) {
	p, err := DecodePage(page(`[{"id":1,"born":"soon"},{"id":2,"born":0},{"id":true,"born":{"d":1}},{"id":[1],"born":"31.12.2020"}]`, func(m map[string]any) { m["totalSize"] = 4 }), 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 4 {
		t.Fatalf("%d rows, want all 4 kept", p.Len())
	}
	want := []struct {
		row int
		col string
	}{{0, "born"}, {2, "id"}, {2, "born"}, {3, "id"}, {3, "born"}}
	errs := p.CellErrors()
	if len(errs) != len(want) {
		t.Fatalf("cell errors %v, want %v", errs, want)
	}
	for i, w := range want {
		if errs[i].Row != w.row || errs[i].Column != w.col || errs[i].Reason == "" {
			t.Errorf("cell error %d: %+v, want row %d column %s", i, errs[i], w.row, w.col)
		}
		col := 0
		if w.col == "born" {
			col = 1
		}
		if !p.Row(w.row)[col].IsNull() {
			t.Errorf("row %d column %s = %+v, want null", w.row, w.col, p.Row(w.row)[col])
		}
	}
	if p.Row(1)[1].Raw != "1970-01-01" || p.Row(0)[0].Raw != "1" {
		t.Errorf("good cells converted to %+v, %+v", p.Row(0), p.Row(1))
	}
}

// TestRealDeploymentShapes decodes what public clients meet on real COMET
// deployments: "" for empty cells in every type, fields columnKeys does not
// list, #result_id# restarting per page, key order varying between rows,
// and a pageSize smaller than asked.
func TestRealDeploymentShapes(t *testing.T) {
	body := []byte(`{"reportName":"Matches","columnTypes":["NUMBER","STRING","DATE","DATETIME","AMOUNT","IMAGELINK"],
	"columnNames":["Id","Name","Born","At","Fee","Logo"],"columnKeys":["id","name","born","at","fee","logo"],
	"results":[
	 {"#result_id#":1,"uid":"a-1","id":7,"name":"","born":"","at":"","fee":"","logo":"","lastupdateddatetime":1774943361680},
	 {"logo":null,"fee":"12.50","at":1774943361680,"born":1027468800000,"name":"Đurić","id":8,"#result_id#":2,"uid":{"nested":[1,2]},"id2":null}
	],"totalSize":1002,"page":0,"pageSize":500,"lastPage":2,"sortField":null,"curl":"x","apiKeyRequestURL":"https://x/?API_KEY=secret"}`)
	p, err := DecodePage(body, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if p.PageSize != 500 || p.LastPage != 2 || p.Len() != 2 {
		t.Fatalf("page size %d, last page %d, %d rows", p.PageSize, p.LastPage, p.Len())
	}
	s, _ := event.NewSchema(p.Columns)
	wantRows := []string{
		`{"at":null,"born":null,"fee":null,"id":7,"logo":"","name":""}`,
		`{"at":"2026-03-31T07:49:21.680Z","born":"2002-07-24","fee":12.50,"id":8,"logo":null,"name":"Đurić"}`,
	}
	for i, w := range wantRows {
		if got := string(s.AppendRow(nil, p.Row(i))); got != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, w)
		}
	}
	if want := []string{"id2", "lastupdateddatetime", "uid"}; !slices.Equal(p.Undeclared, want) {
		t.Errorf("undeclared %v, want %v", p.Undeclared, want)
	}
	if len(p.CellErrors()) != 0 {
		t.Errorf("cell errors %v", p.CellErrors())
	}
}

// FuzzDecodePage: malformed input gives a classified error, never a panic,
// and a page that decodes is internally consistent. The seeds mix in what
// real deployments serve: "" cells, undeclared fields, cells that do not
// convert, #result_id# restarting, a capped pageSize, an HTML page.
func FuzzDecodePage(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/pages/*.json")
	for _, p := range seeds {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add(page(`[{"id":1,"born":"soon"}]`))
	f.Add(page(`[{"id":"","born":"","uid":"x","#result_id#":1},{"born":true,"id":{"a":[1]},"lastupdateddatetime":5}]`, func(m map[string]any) { m["pageSize"] = 2; m["lastPage"] = 0 }))
	f.Add([]byte("<!DOCTYPE html><html><body>maintenance</body></html>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePage(body, 0, 25)
		if err != nil {
			if !errors.Is(err, ErrTransient) && !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.PageSize < 1 || p.PageSize > 25 || p.Len() > p.PageSize {
			t.Fatalf("%d rows on a page of %d, asked 25", p.Len(), p.PageSize)
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
		for _, ce := range p.CellErrors() {
			col := s.Index(ce.Column)
			if ce.Row < 0 || ce.Row >= p.Len() || col < 0 || !p.Row(ce.Row)[col].IsNull() || ce.Reason == "" {
				t.Fatalf("cell error %+v does not name a null cell", ce)
			}
		}
		if len(p.Undeclared) > MaxUndeclared || !slices.IsSorted(p.Undeclared) {
			t.Fatalf("undeclared %v", p.Undeclared)
		}
		for _, u := range p.Undeclared {
			if s.Index(u) >= 0 || strings.HasPrefix(u, "#") {
				t.Fatalf("undeclared %q is a column or the position", u)
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
	if errs := p.CellErrors(); len(errs) != 1 || errs[0].Row != 1 || !strings.Contains(errs[0].Reason, "262145 bytes is longer than the 262144-byte limit") || !p.Row(1)[1].IsNull() {
		t.Errorf("cell errors %v", errs)
	}
	longKey := strings.Repeat("k", MaxKeyBytes+1)
	_, err = DecodePage(page(`[]`, func(m map[string]any) {
		m["columnKeys"] = []string{"id", longKey}
		m["totalSize"] = 0
	}), 0, 25)
	if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "column key of 1025 bytes") {
		t.Errorf("long column key: %v", err)
	}
	var fields strings.Builder
	for i := range 2 * MaxUndeclared {
		fmt.Fprintf(&fields, `,"extra%03d":1`, i)
	}
	p, err = DecodePage(page(`[{"id":1`+fields.String()+`}]`, func(m map[string]any) { m["totalSize"] = 1 }), 0, 25)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Undeclared) != MaxUndeclared {
		t.Errorf("%d undeclared names recorded, want the cap %d", len(p.Undeclared), MaxUndeclared)
	}
}

// TestEmptyObjectNamesWhatIsMissing: a body of {} names the fields a page
// needs, and not lastPage, which it may leave out.
func TestEmptyObjectNamesWhatIsMissing(t *testing.T) {
	_, err := DecodePage([]byte(`{}`), 0, 25)
	if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "missing columnTypes, columnNames, columnKeys, results, totalSize, page, pageSize") || strings.Contains(err.Error(), "lastPage") {
		t.Fatalf("{}: %v", err)
	}
}
