package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/event"
)

func setShapes(t *testing.T, s *Simulator, report string, change func(*Shapes)) {
	t.Helper()
	sh, err := s.Shapes(report)
	if err != nil {
		t.Fatal(err)
	}
	change(&sh)
	if err := s.SetShapes(report, sh); err != nil {
		t.Fatal(err)
	}
}

func TestShapeEmptyStrings(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 200}, ReportSpec{Name: "matches", Kind: "matches", Rows: 100})
	before := map[string][]event.Row{"persons": s.Rows("persons"), "matches": s.Rows("matches")}
	for _, name := range []string{"persons", "matches"} {
		setShapes(t, s, name, func(sh *Shapes) { sh.EmptyStrings = true })
		p := fetch(t, pageURL(srv, s, name, 0, 1000, ""))
		empties := map[string]int{}
		for i, res := range p.Results {
			for j, k := range p.ColumnKeys {
				switch cell := string(res[k]); {
				case cell == "null":
					t.Fatalf("%s row %d: %s is null, want \"\"", name, i, k)
				case cell == `""`:
					empties[p.ColumnTypes[j]]++
					got, want := s.Rows(name)[i][k], before[name][i][k]
					if !want.IsNull() {
						t.Fatalf("%s row %d: %s sent as \"\" but was %v", name, i, k, want)
					}
					if text := p.ColumnTypes[j] == "STRING" || p.ColumnTypes[j] == "IMAGELINK"; text && !got.Equal(event.TextValue("")) || !text && !got.IsNull() {
						t.Errorf("%s row %d: Rows has %s = %#v for a %s cell sent as \"\"", name, i, k, got, p.ColumnTypes[j])
					}
				}
			}
		}
		if len(empties) == 0 {
			t.Errorf("%s: no cell was sent as \"\"", name)
		}
	}
	// persons has null photos (IMAGELINK), matches null scores (NUMBER).
	if got := s.Rows("matches"); !slices.ContainsFunc(got, func(r event.Row) bool { return r["homeScore"].IsNull() }) {
		t.Error("matches: no null homeScore left in Rows")
	}
}

func TestShapeUndeclared(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "matches", Kind: "matches", Rows: 20, Shapes: Shapes{Undeclared: true}})
	p := fetch(t, pageURL(srv, s, "matches", 0, 20, ""))
	for _, f := range []string{"uid", "id", "lastupdateddatetime"} {
		if slices.Contains(p.ColumnKeys, f) {
			t.Errorf("columnKeys lists %q", f)
		}
	}
	uids := map[string]bool{}
	for i, res := range p.Results {
		var uid string
		if err := json.Unmarshal(res["uid"], &uid); err != nil || uid == "" {
			t.Errorf("row %d: uid %s, want a non-empty string", i, res["uid"])
		}
		uids[uid] = true
		if id, err := strconv.ParseInt(string(res["id"]), 10, 64); err != nil || id <= 0 {
			t.Errorf("row %d: id %s, want a positive number", i, res["id"])
		}
		ms, err := strconv.ParseInt(string(res["lastupdateddatetime"]), 10, 64)
		if err != nil || ms < epoch.UnixMilli() {
			t.Errorf("row %d: lastupdateddatetime %s, want epoch milliseconds after %v", i, res["lastupdateddatetime"], epoch)
		}
	}
	if len(uids) != len(p.Results) {
		t.Errorf("%d distinct uids for %d rows", len(uids), len(p.Results))
	}
	for _, r := range s.Rows("matches") {
		for _, f := range []string{"uid", "id", "lastupdateddatetime"} {
			if _, ok := r[f]; ok {
				t.Fatalf("Rows carries %q", f)
			}
		}
	}
	again := fetch(t, pageURL(srv, s, "matches", 0, 20, ""))
	if !reflect.DeepEqual(again.Results, p.Results) {
		t.Error("undeclared fields differ between two requests of unchanged rows")
	}
}

func TestShapeRepeatKeys(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 200})
	plain := s.Rows("persons")
	setShapes(t, s, "persons", func(sh *Shapes) { sh.RepeatKeys = 3 })
	keys := s.RepeatedKeys("persons")
	if len(keys) != 3 || s.Len("persons") != 203 {
		t.Fatalf("RepeatedKeys %q and %d rows, want 3 keys and 203 rows", keys, s.Len("persons"))
	}
	rows := s.Rows("persons")
	for _, k := range keys {
		i := slices.IndexFunc(rows, func(r event.Row) bool { return r["personId"].Raw == k })
		if i+1 >= len(rows) || rows[i+1]["personId"].Raw != k {
			t.Fatalf("Rows: key %s is not on two adjacent rows", k)
		}
		if reflect.DeepEqual(rows[i], rows[i+1]) {
			t.Errorf("Rows: the two rows of key %s have the same content", k)
		}
	}
	// firstSeen[key] counts, by the twin's lastName, which of the two rows came first.
	firstSeen := map[string]map[string]int{}
	for range 40 {
		p := fetch(t, pageURL(srv, s, "persons", 0, 1000, ""))
		if len(p.Results) != 203 || p.TotalSize != 203 {
			t.Fatalf("page has %d rows of %d, want 203", len(p.Results), p.TotalSize)
		}
		for i := 1; i < len(p.Results); i++ {
			a, b := p.Results[i-1], p.Results[i]
			k := cellText(a["personId"])
			if k != cellText(b["personId"]) {
				continue
			}
			if sameCells(a, b) {
				t.Fatalf("key %s: the two rows are identical", k)
			}
			if firstSeen[k] == nil {
				firstSeen[k] = map[string]int{}
			}
			firstSeen[k][string(a["lastName"])+string(a["club"])+string(a["status"])]++
		}
	}
	if len(firstSeen) != 3 {
		t.Fatalf("found %d repeated keys on the page, want 3", len(firstSeen))
	}
	for k, orders := range firstSeen {
		if len(orders) != 2 {
			t.Errorf("key %s: one order only in 40 requests (%v), want both", k, orders)
		}
	}
	setShapes(t, s, "persons", func(sh *Shapes) { sh.RepeatKeys = 0 })
	if got := s.RepeatedKeys("persons"); len(got) != 0 || !reflect.DeepEqual(s.Rows("persons"), plain) {
		t.Errorf("after switching off: repeated keys %q, rows restored %v", got, reflect.DeepEqual(s.Rows("persons"), plain))
	}
}

func TestShapeRepeatKeysCompositeKey(t *testing.T) {
	s, _ := start(t, ReportSpec{Name: "matches", Kind: "matches", Rows: 50, Shapes: Shapes{RepeatKeys: 2}})
	keys := s.RepeatedKeys("matches")
	if len(keys) != 2 {
		t.Fatalf("RepeatedKeys %q, want 2", keys)
	}
	for _, k := range keys {
		comp, no, ok := strings.Cut(k, "/")
		n := 0
		for _, r := range s.Rows("matches") {
			if r["competitionId"].Raw == comp && r["matchNo"].Raw == no {
				n++
			}
		}
		if !ok || n != 2 {
			t.Errorf("key %q: %d rows, want competitionId/matchNo on 2 rows", k, n)
		}
	}
}

func TestShapePageCap(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 1200, Shapes: Shapes{PageCap: 500}})
	ids := func(p served) []string {
		var out []string
		for _, r := range p.Results {
			out = append(out, cellText(r["personId"]))
		}
		return out
	}
	var want []string
	for _, r := range s.Rows("persons") {
		want = append(want, r["personId"].Raw)
	}
	p0 := fetch(t, pageURL(srv, s, "persons", 0, 1000, ""))
	if p0.PageSize != 500 || len(p0.Results) != 500 || p0.LastPage != 2 || p0.TotalSize != 1200 {
		t.Fatalf("asked 1000: pageSize %d, %d rows, lastPage %d, totalSize %d; want 500, 500, 2, 1200", p0.PageSize, len(p0.Results), p0.LastPage, p0.TotalSize)
	}
	p1 := fetch(t, pageURL(srv, s, "persons", 1, 500, ""))
	if got := append(ids(p0), ids(p1)...); !slices.Equal(got, want[:1000]) {
		t.Errorf("pages 0 and 1 hold %d rows that are not the first 1000 in order", len(got))
	}
	if p := fetch(t, pageURL(srv, s, "persons", 2, 1000, "")); !slices.Equal(ids(p), want[1000:]) {
		t.Errorf("page 2 at size 1000 holds %d rows, want the last 200", len(p.Results))
	}
	if p := fetch(t, pageURL(srv, s, "persons", 0, 100, "")); p.PageSize != 100 || p.LastPage != 11 {
		t.Errorf("asked 100: pageSize %d, lastPage %d; want 100, 11", p.PageSize, p.LastPage)
	}
}

func TestShapeTemplatePath(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 10, Shapes: Shapes{TemplatePath: true}})
	at := func(tid string) string {
		return fmt.Sprintf("%s%s%s/0/10/?API_KEY=%s", srv.URL, ReportPath, tid, s.Key("persons"))
	}
	if r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, "")); r.status != http.StatusNotFound {
		t.Errorf("plain path: %d, want 404", r.status)
	}
	p := fetch(t, at("4711"))
	if p.ReportTemplateID != 4711 || len(p.Results) != 10 || !strings.Contains(p.APIKeyRequestURL, ReportPath+"4711/0/10/") {
		t.Errorf("template path: reportTemplateID %d, %d rows, apiKeyRequestURL %s", p.ReportTemplateID, len(p.Results), p.APIKeyRequestURL)
	}
	if r := do(t, http.MethodGet, strings.Replace(at("4711"), "/?", "?", 1)); r.status != http.StatusOK {
		t.Errorf("template path without the trailing slash: %d, want 200", r.status)
	}
	if r := do(t, http.MethodGet, at("4712")); r.status != http.StatusNotFound {
		t.Errorf("wrong template id: %d, want 404", r.status)
	}
	setShapes(t, s, "persons", func(sh *Shapes) { sh.TemplatePath = false })
	if r := do(t, http.MethodGet, at("4711")); r.status != http.StatusNotFound {
		t.Errorf("template path while off: %d, want 404", r.status)
	}
	fetch(t, pageURL(srv, s, "persons", 0, 10, ""))
	if st := s.Stats(); st.Reports["persons"].WrongPath != 3 || st.Reports["persons"].Requests != 6 || st.Refused != 0 {
		t.Errorf("stats %+v refused %d, want 3 wrong paths of 6 requests, none refused", st.Reports["persons"], st.Refused)
	}
}

func TestShapeParams(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 10,
		Shapes: Shapes{Params: map[string]string{"registrationStatus": "label.confirmed", "from": "2026-01-01"}}})
	tests := []struct {
		extra string
		want  int
	}{
		{"", http.StatusBadRequest},
		{"&registrationStatus=label.confirmed", http.StatusBadRequest},
		{"&registrationStatus=label.pending&from=2026-01-01", http.StatusBadRequest},
		{"&registrationStatus=label.confirmed&from=2026-01-01", http.StatusOK},
		{"&from=2026-01-01&registrationStatus=label.confirmed&other=1", http.StatusOK},
	}
	for _, tt := range tests {
		if r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, tt.extra)); r.status != tt.want {
			t.Errorf("params %q: %d, want %d", tt.extra, r.status, tt.want)
		}
	}
	if st := s.Stats().Reports["persons"]; st.BadParams != 3 || st.Requests != 5 {
		t.Errorf("stats %+v, want 3 bad params of 5 requests", st)
	}
	p := fetch(t, pageURL(srv, s, "persons", 0, 10, "&registrationStatus=label.confirmed&from=2026-01-01"))
	if !strings.HasSuffix(p.APIKeyRequestURL, "&from=2026-01-01&registrationStatus=label.confirmed") {
		t.Errorf("apiKeyRequestURL %s does not end with the parameters", p.APIKeyRequestURL)
	}
}

func TestShapePageResultIDs(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 30})
	resultIDs := func() []string {
		var out []string
		for _, r := range fetch(t, pageURL(srv, s, "persons", 1, 10, "")).Results {
			out = append(out, string(r["#result_id#"]))
		}
		return out
	}
	if got, want := resultIDs(), []string{"10", "11", "12", "13", "14", "15", "16", "17", "18", "19"}; !slices.Equal(got, want) {
		t.Errorf("default #result_id# on page 1: %q, want %q", got, want)
	}
	setShapes(t, s, "persons", func(sh *Shapes) { sh.PageResultIDs = true })
	if got, want := resultIDs(), []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}; !slices.Equal(got, want) {
		t.Errorf("page-result-ids #result_id# on page 1: %q, want %q", got, want)
	}
}

// converts reports whether a cell as sent converts to its column type the
// way the contract reads COMET: a number for NUMBER and AMOUNT, epoch
// milliseconds for DATE and DATETIME, null or "" for nothing.
func converts(typ string, raw json.RawMessage) bool {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return false
	}
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == "" || typ == "STRING" || typ == "IMAGELINK"
	case json.Number:
		_, err := strconv.ParseInt(v.String(), 10, 64)
		return typ == "NUMBER" || typ == "AMOUNT" || err == nil && (typ == "DATE" || typ == "DATETIME")
	}
	return false
}

func TestShapeBadCells(t *testing.T) {
	for _, kind := range []string{"persons", "matches", "fees", "events"} {
		t.Run(kind, func(t *testing.T) {
			s, srv := start(t, ReportSpec{Name: kind, Kind: kind, Rows: 100})
			plain := s.Rows(kind)
			setShapes(t, s, kind, func(sh *Shapes) { sh.BadCells = 5 })
			p := fetch(t, pageURL(srv, s, kind, 0, 1000, ""))
			rows := s.Rows(kind)
			key := s.KeyColumns(kind)
			bad := 0
			for i, res := range p.Results {
				n := 0
				for j, k := range p.ColumnKeys {
					if converts(p.ColumnTypes[j], res[k]) {
						continue
					}
					n++
					if slices.Contains(key, k) {
						t.Errorf("row %d: key column %s is bad: %s", i, k, res[k])
					}
					if !rows[i][k].IsNull() {
						t.Errorf("row %d: bad cell %s = %s is %#v in Rows, want null", i, k, res[k], rows[i][k])
					}
				}
				if n > 1 {
					t.Errorf("row %d has %d bad cells, want one", i, n)
				}
				bad += n
			}
			if bad != 5 {
				t.Errorf("%d bad cells served, want 5", bad)
			}
			setShapes(t, s, kind, func(sh *Shapes) { sh.BadCells = 0 })
			if !reflect.DeepEqual(s.Rows(kind), plain) {
				t.Error("switching bad-cells off did not restore the cells")
			}
		})
	}
}

func TestShapeStormAndHTMLErrors(t *testing.T) {
	tests := []struct {
		name   string
		shapes Shapes
		want   string // the media type of the 503s
	}{
		{"json", Shapes{Storm: 3}, "application/json"},
		{"html", Shapes{Storm: 3, HTMLErrors: true}, "text/html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 10, Shapes: tt.shapes})
			for i := range 3 {
				if r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, "")); r.status != http.StatusServiceUnavailable || r.contentType != tt.want {
					t.Errorf("request %d: %d %s, want 503 %s", i, r.status, r.contentType, tt.want)
				}
			}
			fetch(t, pageURL(srv, s, "persons", 0, 10, ""))
			if sh, _ := s.Shapes("persons"); sh.Storm != 0 {
				t.Errorf("storm left %d, want 0", sh.Storm)
			}
		})
	}
	t.Run("faults", func(t *testing.T) {
		s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 10})
		for _, f := range []Fault{{Status: 500}, {Status: 500, HTML: true}, {Status: 200, HTML: true}} {
			if err := s.Inject("persons", f); err != nil {
				t.Fatal(err)
			}
		}
		setShapes(t, s, "persons", func(sh *Shapes) { sh.HTMLErrors = true })
		if err := s.Inject("persons", Fault{Status: 502}); err != nil {
			t.Fatal(err)
		}
		want := []response{{status: 500, contentType: "text/html"}, {status: 500, contentType: "text/html"},
			{status: 200, contentType: "text/html"}, {status: 502, contentType: "text/html"}}
		for i, w := range want {
			r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, ""))
			if r.status != w.status || r.contentType != w.contentType || json.Valid(r.body) {
				t.Errorf("fault %d: %d %s %.60q, want %d %s and not JSON", i, r.status, r.contentType, r.body, w.status, w.contentType)
			}
		}
		setShapes(t, s, "persons", func(sh *Shapes) { sh.HTMLErrors = false })
		_ = s.Inject("persons", Fault{Status: 503})
		if r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, "")); r.status != 503 || r.contentType != "application/json" {
			t.Errorf("fault without html-errors: %d %s, want 503 application/json", r.status, r.contentType)
		}
	})
}

func TestShapeMaintenance(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 10})
	setShapes(t, s, "persons", func(sh *Shapes) { sh.Maintenance = 2 })
	for i := range 2 {
		r := do(t, http.MethodGet, pageURL(srv, s, "persons", 0, 10, ""))
		if r.status != http.StatusOK || r.contentType != "text/html" || json.Valid(r.body) || !strings.Contains(string(r.body), "maintenance") {
			t.Errorf("request %d: %d %s %.60q, want a 200 HTML maintenance page", i, r.status, r.contentType, r.body)
		}
	}
	if p := fetch(t, pageURL(srv, s, "persons", 0, 10, "")); len(p.Results) != 10 {
		t.Errorf("after maintenance: %d rows, want 10", len(p.Results))
	}
}

func TestShapeGrow(t *testing.T) {
	for _, grow := range []int{1, 3} {
		t.Run(strconv.Itoa(grow), func(t *testing.T) {
			s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 100, Shapes: Shapes{Grow: grow}})
			p0 := fetch(t, pageURL(srv, s, "persons", 0, 10, ""))
			if p0.TotalSize != 100 || s.Len("persons") != 100+grow {
				t.Fatalf("page 0 says %d rows, simulator holds %d; want 100 and %d", p0.TotalSize, s.Len("persons"), 100+grow)
			}
			p1 := fetch(t, pageURL(srv, s, "persons", 1, 10, ""))
			if p1.TotalSize != 100+grow || s.Len("persons") != 100+grow {
				t.Errorf("page 1: totalSize %d, %d rows held; want %d (page 1 does not grow)", p1.TotalSize, s.Len("persons"), 100+grow)
			}
			for k := range grow {
				// The last rows of page 0 come again at the top of page 1.
				if a, b := p0.Results[10-grow+k]["personId"], p1.Results[k]["personId"]; string(a) != string(b) {
					t.Errorf("page 1 row %d is %s, want %s from page 0", k, b, a)
				}
			}
			fetch(t, pageURL(srv, s, "persons", 0, 10, ""))
			if s.Len("persons") != 100+2*grow {
				t.Errorf("after a second page 0: %d rows, want %d", s.Len("persons"), 100+2*grow)
			}
		})
	}
}

func TestShapeControlEndpoint(t *testing.T) {
	s, srv := start(t, ReportSpec{Name: "persons", Kind: "persons", Rows: 50})
	post := func(q url.Values) response {
		return do(t, http.MethodPost, srv.URL+"/_sim/reports/persons/shape?"+q.Encode())
	}
	values := map[string]string{
		"empty-strings": "", "undeclared": "on", "repeat-keys": "2", "page-cap": "20", "template-path": "true",
		"params": "registrationStatus=label.confirmed", "page-result-ids": "", "bad-cells": "3", "html-errors": "true",
		"grow": "1", "storm": "4", "maintenance": "5",
	}
	for _, name := range ShapeNames() {
		v, ok := values[name]
		if !ok {
			t.Fatalf("no test value for shape %s", name)
		}
		if r := post(url.Values{"name": {name}, "value": {v}}); r.status != http.StatusOK {
			t.Errorf("shape %s=%s: %d %s", name, v, r.status, r.body)
		}
	}
	want := Shapes{EmptyStrings: true, Undeclared: true, RepeatKeys: 2, PageCap: 20, TemplatePath: true,
		Params: map[string]string{"registrationStatus": "label.confirmed"}, PageResultIDs: true, BadCells: 3, HTMLErrors: true,
		Grow: 1, Storm: 4, Maintenance: 5}
	if got, _ := s.Shapes("persons"); !reflect.DeepEqual(got, want) {
		t.Errorf("shapes %+v, want %+v", got, want)
	}
	if len(s.RepeatedKeys("persons")) != 2 {
		t.Errorf("repeated keys %q, want 2", s.RepeatedKeys("persons"))
	}
	r := do(t, http.MethodGet, srv.URL+"/_sim/reports")
	var listed []struct {
		Name       string
		TemplateID int
		Shapes     Shapes
	}
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed) != 1 || listed[0].TemplateID != 4711 || !reflect.DeepEqual(listed[0].Shapes, want) {
		t.Errorf("GET /_sim/reports: %v %s", err, r.body)
	}
	if r := post(url.Values{"name": {"params"}}); r.status != http.StatusOK {
		t.Errorf("clearing params: %d %s", r.status, r.body)
	} else if got, _ := s.Shapes("persons"); got.Params != nil {
		t.Errorf("params after clearing: %v", got.Params)
	}
	for _, q := range []url.Values{
		{"name": {"sideways"}},
		{"name": {"page-cap"}, "value": {"many"}},
		{"name": {"empty-strings"}, "value": {"maybe"}},
	} {
		r := post(q)
		var body struct{ Error string }
		_ = json.Unmarshal(r.body, &body)
		if r.status != http.StatusBadRequest || !strings.Contains(body.Error, q.Get("name")) || !strings.Contains(body.Error, q.Get("value")) {
			t.Errorf("shape %s=%s: %d %s, want 400 naming the shape and the value", q.Get("name"), q.Get("value"), r.status, r.body)
		}
	}
}

func TestParseShape(t *testing.T) {
	tests := []struct {
		name, value string
		want        Shapes
		err         bool
	}{
		{name: "empty-strings", want: Shapes{EmptyStrings: true}},
		{name: "empty-strings", value: "on", want: Shapes{EmptyStrings: true}},
		{name: "empty-strings", value: "true", want: Shapes{EmptyStrings: true}},
		{name: "empty-strings", value: "off"},
		{name: "empty-strings", value: "false"},
		{name: "empty-strings", value: "yes", err: true},
		{name: "undeclared", want: Shapes{Undeclared: true}},
		{name: "template-path", want: Shapes{TemplatePath: true}},
		{name: "page-result-ids", want: Shapes{PageResultIDs: true}},
		{name: "html-errors", want: Shapes{HTMLErrors: true}},
		{name: "repeat-keys", value: "3", want: Shapes{RepeatKeys: 3}},
		{name: "page-cap", value: "500", want: Shapes{PageCap: 500}},
		{name: "page-cap", value: "0"},
		{name: "page-cap", err: true},
		{name: "page-cap", value: "-1", err: true},
		{name: "page-cap", value: "1e3", err: true},
		{name: "bad-cells", value: "2", want: Shapes{BadCells: 2}},
		{name: "grow", value: "1", want: Shapes{Grow: 1}},
		{name: "storm", value: "5", want: Shapes{Storm: 5}},
		{name: "maintenance", value: "2", want: Shapes{Maintenance: 2}},
		{name: "params", value: "registrationStatus=label.confirmed&from=2026-01-01",
			want: Shapes{Params: map[string]string{"registrationStatus": "label.confirmed", "from": "2026-01-01"}}},
		{name: "params", value: "a=%20b", want: Shapes{Params: map[string]string{"a": " b"}}},
		{name: "params"},
		{name: "params", value: "a=1&a=2", err: true},
		{name: "params", value: "API_KEY=x", err: true},
		{name: "params", value: "=x", err: true},
		{name: "params", value: "a=%zz", err: true},
		{name: "EmptyStrings", err: true},
		{name: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			var sh Shapes
			err := ParseShape(&sh, tt.name, tt.value)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(sh, tt.want) {
				t.Errorf("shapes %+v, want %+v", sh, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), strconv.Quote(tt.name)) && !strings.Contains(err.Error(), tt.name+":") {
				t.Errorf("error %q does not name the shape %q", err, tt.name)
			}
		})
	}
	// Every shape that is on reads back from its textual form.
	all := Shapes{EmptyStrings: true, Undeclared: true, RepeatKeys: 1, PageCap: 2, TemplatePath: true,
		Params: map[string]string{"a": "b c", "d": "e&f"}, PageResultIDs: true, BadCells: 3, HTMLErrors: true, Grow: 4, Storm: 5, Maintenance: 6}
	var back Shapes
	for _, text := range strings.Fields(all.String()) {
		name, value, _ := strings.Cut(text, "=")
		if err := ParseShape(&back, name, value); err != nil {
			t.Fatalf("%s from String: %v", text, err)
		}
	}
	if !reflect.DeepEqual(back, all) {
		t.Errorf("String %q reads back as %+v, want %+v", all.String(), back, all)
	}
}

func TestSetShapesRefuses(t *testing.T) {
	s, _ := start(t, ReportSpec{Name: "events", Kind: "events", Rows: 10}, ReportSpec{Name: "hostile", Kind: "hostile", Rows: 10})
	tests := []struct {
		report string
		shapes Shapes
	}{
		{"events", Shapes{RepeatKeys: 1}},
		{"hostile", Shapes{BadCells: 1}},
		{"hostile", Shapes{Storm: -1}},
		{"hostile", Shapes{Params: map[string]string{"API_KEY": "x"}}},
		{"nope", Shapes{}},
	}
	for _, tt := range tests {
		if err := s.SetShapes(tt.report, tt.shapes); err == nil {
			t.Errorf("SetShapes(%s, %+v) accepted", tt.report, tt.shapes)
		}
	}
	if _, err := New(Config{Reports: []ReportSpec{{Name: "events", Kind: "events", Shapes: Shapes{RepeatKeys: 1}}}}); err == nil {
		t.Error("New accepted repeat-keys on a report keyed by content")
	}
}
