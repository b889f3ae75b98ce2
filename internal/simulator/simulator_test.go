package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/event"
)

// served is a page as a client decodes it; results keep each cell's JSON.
type served struct {
	ReportName       string                       `json:"reportName"`
	ColumnTypes      []string                     `json:"columnTypes"`
	ColumnKeys       []string                     `json:"columnKeys"`
	Results          []map[string]json.RawMessage `json:"results"`
	TotalSize        int                          `json:"totalSize"`
	Page             int                          `json:"page"`
	PageSize         int                          `json:"pageSize"`
	LastPage         int                          `json:"lastPage"`
	APIKeyRequestURL string                       `json:"apiKeyRequestURL"`
	ReportTemplateID int                          `json:"reportTemplateID"`
}

// start serves a simulator without a rate limit behind httptest.
func start(t *testing.T, reports ...ReportSpec) (*Simulator, *httptest.Server) {
	t.Helper()
	s, err := New(Config{Seed: 7, Reports: reports})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

type response struct {
	status      int
	contentType string // the media type, without parameters
	body        []byte
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return response{status: resp.StatusCode, contentType: mt, body: body}
}

// pageURL is the plain URL of a page; extra is appended to the query.
func pageURL(srv *httptest.Server, s *Simulator, report string, page, size int, extra string) string {
	return fmt.Sprintf("%s%s%d/%d/?API_KEY=%s%s", srv.URL, ReportPath, page, size, s.Key(report), extra)
}

// fetch gets a page that must be served and decodes it.
func fetch(t *testing.T, url string) served {
	t.Helper()
	r := do(t, http.MethodGet, url)
	if r.status != http.StatusOK || r.contentType != "application/json" {
		t.Fatalf("GET %s: %d %s %.200s", url, r.status, r.contentType, r.body)
	}
	var p served
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return p
}

// rowsHash hashes rows in their contract form, column by column.
func rowsHash(s *Simulator, names ...string) string {
	h := sha256.New()
	for _, name := range names {
		cols := s.Columns(name)
		for _, r := range s.Rows(name) {
			for _, c := range cols {
				v := r[c.Key]
				h.Write([]byte{byte(v.Kind)})
				h.Write([]byte(c.Key + "=" + v.Raw + "\x00"))
			}
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestNoShapesUnchanged guards what tests elsewhere rely on: with no shape
// switched on, the data for a seed, the pages served (bytes included) and the
// randomness later changes draw from are what they were before shapes were
// added. The hashes were computed with the simulator as it was then.
func TestNoShapesUnchanged(t *testing.T) {
	s, err := New(Config{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: hash %s, want %s", what, got, want)
		}
	}
	check("persons rows", rowsHash(s, "persons"), "549c61c71c823705690bdbccbe33b4953a8bd1d5537375cc793b22b7727442c8")
	check("all rows", rowsHash(s, "persons", "matches", "fees"), "1ad2ab8f15621741260f9ecaffa660109544b28aa5ed3cd2ad5c90674c6fb071")
	h := s.Handler()
	var pages []byte
	for _, p := range []string{"0/100/", "3/7", "1/1000/"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://example.com"+ReportPath+p+"?API_KEY="+s.Key("persons"), nil))
		pages = append(pages, rec.Body.Bytes()...)
	}
	sum := sha256.Sum256(pages)
	check("persons pages", hex.EncodeToString(sum[:]), "f31ced3acfa6d7141694c032665503ce0e5d509fd8a18cb6c3a3e4a22f3ab3d9")
	_ = s.Insert("persons", 5, 0)
	_ = s.Update("persons", 5)
	_ = s.Delete("matches", 3, -1)
	_ = s.UpdateAt("fees", 7)
	for range 10 {
		s.RandomChange()
	}
	check("rows after changes", rowsHash(s, "persons", "matches", "fees"), "0aea07e9b0eb5eafe2664be27509e1bd67ff0203467c96ae43eab24064b4b095")
}

func TestTemplateIDDefaults(t *testing.T) {
	s, _ := start(t, DefaultReports()...)
	for i, r := range s.Reports() {
		if want := 4711 + slices.IndexFunc(DefaultReports(), func(d ReportSpec) bool { return d.Name == r.Name }); r.TemplateID != want {
			t.Errorf("report %d %s: template id %d, want %d", i, r.Name, r.TemplateID, want)
		}
	}
	s2, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 3, TemplateID: 99})
	if got := fetch(t, pageURL(srv, s2, "persons", 0, 10, "")).ReportTemplateID; got != 99 {
		t.Errorf("reportTemplateID %d, want 99", got)
	}
}

func TestStatsCountRequestsByReportAndPage(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 30}, ReportSpec{Name: "fees", Kind: "fees", Rows: 3})
	for _, p := range []int{0, 1, 1, 2} {
		fetch(t, pageURL(srv, s, "persons", p, 10, ""))
	}
	st := s.Stats().Reports
	if got := st["persons"]; got.Requests != 4 || got.Pages[0] != 1 || got.Pages[1] != 2 || got.Pages[2] != 1 {
		t.Errorf("persons stats %+v, want 4 requests: page 0 once, 1 twice, 2 once", got)
	}
	if got, ok := st["fees"]; !ok || got.Requests != 0 || got.Pages == nil {
		t.Errorf("fees stats %+v (present %v), want present with no requests", got, ok)
	}
	s.ResetStats()
	if got := s.Stats().Reports["persons"]; got.Requests != 0 || len(got.Pages) != 0 {
		t.Errorf("after ResetStats persons stats %+v, want none", got)
	}
}

func TestRowsOfPoisonedCells(t *testing.T) {
	s, _ := start(t, ReportSpec{Name: "hostile", Kind: "hostile", Rows: 3}, ReportSpec{Name: "persons", Kind: "persons", Rows: 3})
	tests := []struct {
		report, column, raw string
		want                event.Value
	}{
		{"hostile", "long", `"abc"`, event.TextValue("abc")},
		{"hostile", "long", `[[["deep"]]]`, event.Value{}},
		{"hostile", "long", `"unterminated`, event.Value{}},
		{"hostile", "id", `12.50`, event.NumberValue("12.50")},
		{"persons", "dateOfBirth", `true`, event.Value{}},
		{"persons", "dateOfBirth", `0`, event.TextValue("1970-01-01")},
		{"persons", "registered", `"2020-01-01"`, event.Value{}},
	}
	for _, tt := range tests {
		t.Run(tt.report+"/"+tt.raw, func(t *testing.T) {
			if err := s.Poison(tt.report, 0, tt.column, tt.raw); err != nil {
				t.Fatal(err)
			}
			if got := s.Rows(tt.report)[0][tt.column]; !got.Equal(tt.want) {
				t.Errorf("Rows: %s is %#v, want %#v", tt.column, got, tt.want)
			}
		})
	}
}

func TestEventsKind(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "events", Kind: "events", Rows: 400})
	if got := s.KeyColumns("events"); !slices.Equal(got, []string{event.ContentKey}) {
		t.Fatalf("KeyColumns %q, want [\"*\"]", got)
	}
	var keys []string
	for _, c := range s.Columns("events") {
		keys = append(keys, c.Key+":"+string(c.Type))
	}
	if want := []string{"matchId:NUMBER", "minute:NUMBER", "teamId:NUMBER", "playerId:NUMBER", "eventType:STRING", "recordedAt:DATETIME"}; !slices.Equal(keys, want) {
		t.Errorf("columns %q, want %q", keys, want)
	}
	rows := fetch(t, pageURL(srv, s, "events", 0, 400, "")).Results
	identical := 0
	for i := 1; i < len(rows); i++ {
		if sameCells(rows[i-1], rows[i]) {
			identical++
		}
	}
	// About one row in twenty repeats the one before.
	if identical < 5 || identical > 60 {
		t.Errorf("%d of 400 rows repeat the row before, want about 20", identical)
	}
	if s.RepeatedKeys("events") != nil {
		t.Errorf("RepeatedKeys of a report keyed by content: %q, want nil", s.RepeatedKeys("events"))
	}
	before := s.Rows("events")[10]
	if err := s.UpdateAt("events", 10); err != nil {
		t.Fatal(err)
	}
	after := s.Rows("events")[10]
	for k, v := range before {
		if changed := !v.Equal(after[k]); changed != (k == "eventType") {
			t.Errorf("update: %s changed %v (%v to %v), want only eventType changed", k, changed, v, after[k])
		}
	}
	if err := s.Insert("events", 3, 0); err != nil || s.Len("events") != 403 {
		t.Errorf("insert: %v, %d rows, want 403", err, s.Len("events"))
	}
}

// sameCells reports whether two results hold the same cells, #result_id# aside.
func sameCells(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if k != "#result_id#" && string(v) != string(b[k]) {
			return false
		}
	}
	return true
}

// cellText is a result's cell as text: a JSON string's content or the literal.
func cellText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}
