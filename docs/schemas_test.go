package docs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cometstream/cometstream/docs"
	"github.com/cometstream/cometstream/event"
)

// eventTypes are the CloudEvents types cometstream publishes.
var eventTypes = []string{
	"comet.row.created",
	"comet.row.updated",
	"comet.row.deleted",
	"comet.report.synced",
	"comet.report.schema",
	"comet.report.unavailable",
	"comet.report.held",
	"comet.report.failed",
}

// samples reads testdata/events/*.json, by file name without ".json".
func samples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

// decode parses JSON keeping numbers' digits.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidateEventAcceptsSamples(t *testing.T) {
	byType := map[string]string{}
	for name, b := range samples(t) {
		t.Run(name, func(t *testing.T) {
			if err := docs.ValidateEvent(b); err != nil {
				t.Fatalf("ValidateEvent: %v", err)
			}
		})
		typ, _ := decode(t, b).(map[string]any)["type"].(string)
		byType[typ] = name
	}
	for _, typ := range eventTypes {
		if _, ok := byType[typ]; !ok {
			t.Errorf("no sample of %s in testdata/events", typ)
		}
	}
	// The samples hold what the schemas must accept: a content-keyed token
	// of a repeated row, a decimal that float64 cannot hold, a DATE and a
	// DATETIME.
	created := string(samples(t)["created"])
	for _, want := range []string{
		`"subject":"hdeadbeefdeadbeefdeadbeefdeadbeef-2"`,
		`"amount":12345678901234567890.10`,
		`"matchDate":"2026-11-26"`,
		`"scoredAt":"2026-11-26T19:45:12.345Z"`,
	} {
		if !strings.Contains(created, want) {
			t.Errorf("testdata/events/created.json lacks %s", want)
		}
	}
}

// mutate returns a sample event changed by f.
func mutate(t *testing.T, sample string, f func(ev map[string]any)) []byte {
	t.Helper()
	b, ok := samples(t)[sample]
	if !ok {
		t.Fatalf("no sample %q", sample)
	}
	ev := decode(t, b).(map[string]any)
	f(ev)
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func data(ev map[string]any) map[string]any { return ev["data"].(map[string]any) }

func TestValidateEventRejects(t *testing.T) {
	row := func() map[string]any { return map[string]any{"personId": json.Number("1"), "lastName": "X"} }
	tests := []struct {
		name   string
		sample string
		mutate func(ev map[string]any)
		raw    string // instead of sample and mutate
		want   []string
	}{
		{
			name: "op not matching type", sample: "updated",
			mutate: func(ev map[string]any) { ev["type"] = "comet.row.created" },
			want:   []string{"comet.row.created event", "'/data/op'", `"updated" does not match the type`},
		},
		{
			name: "created with a before", sample: "created",
			mutate: func(ev map[string]any) { data(ev)["before"] = row() },
			want:   []string{"comet.row.created event", "'/data/before'", "want null"},
		},
		{
			name: "deleted with an after", sample: "deleted",
			mutate: func(ev map[string]any) { data(ev)["after"] = row() },
			want:   []string{"comet.row.deleted event", "'/data/after'", "want null"},
		},
		{
			name: "updated without a before", sample: "updated",
			mutate: func(ev map[string]any) { data(ev)["before"] = nil },
			want:   []string{"comet.row.updated event", "'/data/before'", "want object"},
		},
		{
			name: "deleted with changed columns", sample: "deleted",
			mutate: func(ev map[string]any) { data(ev)["changed"] = []any{"amount"} },
			want:   []string{"comet.row.deleted event", "'/data/changed'", "maxItems"},
		},
		{
			name: "boolean cell value", sample: "updated",
			mutate: func(ev map[string]any) { data(ev)["after"].(map[string]any)["lastName"] = true },
			want:   []string{"comet.row.updated event", "'/data/after/lastName'", "got boolean"},
		},
		{
			name: "nested object cell value", sample: "updated",
			mutate: func(ev map[string]any) {
				data(ev)["key"].(map[string]any)["personId"] = map[string]any{"id": json.Number("1")}
			},
			want: []string{"comet.row.updated event", "'/data/key/personId'", "got object"},
		},
		{
			name: "array cell value", sample: "created",
			mutate: func(ev map[string]any) { data(ev)["after"].(map[string]any)["minute"] = []any{json.Number("45")} },
			want:   []string{"comet.row.created event", "'/data/after/minute'", "got array"},
		},
		{
			name: "result id column", sample: "updated",
			mutate: func(ev map[string]any) { data(ev)["after"].(map[string]any)["#result_id#"] = json.Number("7") },
			want:   []string{"comet.row.updated event", "'/data/after/#result_id#'"},
		},
		{
			name: "empty key", sample: "updated",
			mutate: func(ev map[string]any) { data(ev)["key"] = map[string]any{} },
			want:   []string{"comet.row.updated event", "'/data/key'", "minProperties"},
		},
		{
			name: "subject with a space", sample: "updated",
			mutate: func(ev map[string]any) { ev["subject"] = "191579 x" },
			want:   []string{"comet.row.updated event", "'/subject'", "does not match pattern"},
		},
		{
			name: "subject with a dot", sample: "updated",
			mutate: func(ev map[string]any) { ev["subject"] = "a.b" },
			want:   []string{"comet.row.updated event", "'/subject'", "does not match pattern"},
		},
		{
			name: "subject with impossible base64 length", sample: "deleted",
			mutate: func(ev map[string]any) { ev["subject"] = "=RkVFI" },
			want:   []string{"comet.row.deleted event", "'/subject'", "does not match pattern"},
		},
		{
			name: "row event without subject", sample: "created",
			mutate: func(ev map[string]any) { delete(ev, "subject") },
			want:   []string{"comet.row.created event", "missing property 'subject'"},
		},
		{
			name: "report event with subject", sample: "synced",
			mutate: func(ev map[string]any) { ev["subject"] = "191579" },
			want:   []string{"comet.report.synced event", "'/subject'"},
		},
		{
			name: "wrong dataschema", sample: "synced",
			mutate: func(ev map[string]any) { ev["dataschema"] = docs.DataSchema("comet.row.created") },
			want:   []string{"comet.report.synced event", "'/dataschema'", docs.SchemaBase + "synced.json"},
		},
		{
			name: "missing dataschema", sample: "held",
			mutate: func(ev map[string]any) { delete(ev, "dataschema") },
			want:   []string{"comet.report.held event", "missing property 'dataschema'"},
		},
		{
			name: "missing sync", sample: "created",
			mutate: func(ev map[string]any) { delete(data(ev), "sync") },
			want:   []string{"comet.row.created event", "'/data'", "missing property 'sync'"},
		},
		{
			name: "unknown member in data", sample: "failed",
			mutate: func(ev map[string]any) { data(ev)["retry_in"] = json.Number("60") },
			want:   []string{"comet.report.failed event", "'/data'", "retry_in"},
		},
		{
			name: "unknown member in envelope", sample: "schema",
			mutate: func(ev map[string]any) { ev["traceparent"] = "00-x" },
			want:   []string{"comet.report.schema event", "traceparent"},
		},
		{
			name: "synced with a string count", sample: "synced",
			mutate: func(ev map[string]any) { data(ev)["rows"] = "2100" },
			want:   []string{"comet.report.synced event", "'/data/rows'", "got string, want integer"},
		},
		{
			name: "synced with a fractional count", sample: "synced",
			mutate: func(ev map[string]any) { data(ev)["pages"] = json.Number("2.5") },
			want:   []string{"comet.report.synced event", "'/data/pages'", "want integer"},
		},
		{
			name: "synced with a bad date-time", sample: "synced",
			mutate: func(ev map[string]any) { data(ev)["started"] = "2026-13-26T19:59:58Z" },
			want:   []string{"comet.report.synced event", "'/data/started'", "date-time"},
		},
		{
			name: "bad id", sample: "held",
			mutate: func(ev map[string]any) { ev["id"] = "0123456789ABCDEF0123456789ABCDEF" },
			want:   []string{"comet.report.held event", "'/id'", "does not match pattern"},
		},
		{
			name: "time without milliseconds", sample: "unavailable",
			mutate: func(ev map[string]any) { ev["time"] = "2026-11-26T20:00:00Z" },
			want:   []string{"comet.report.unavailable event", "'/time'", "does not match pattern"},
		},
		{
			name: "unknown type", sample: "held",
			mutate: func(ev map[string]any) { ev["type"] = "comet.report.paused" },
			want:   []string{"comet.report.paused event", "'/type'"},
		},
		{
			name: "source naming another report", sample: "unavailable",
			mutate: func(ev map[string]any) { ev["source"] = "comet://comet.faw.cymru/fees" },
			want:   []string{"comet.report.unavailable event", "'/data/report'", `names report "fees"`},
		},
		{
			// A float64 would round this to 1 and let it through.
			name: "threshold just above 1", sample: "held",
			mutate: func(ev map[string]any) { data(ev)["threshold"] = json.Number("1.00000000000000000001") },
			want:   []string{"comet.report.held event", "'/data/threshold'", "maximum", "1.00000000000000000001"},
		},
		{
			name: "column of unknown type", sample: "schema",
			mutate: func(ev map[string]any) {
				data(ev)["columns"].([]any)[0].(map[string]any)["type"] = "BOOLEAN"
			},
			want: []string{"comet.report.schema event", "'/data/columns/0/type'"},
		},
		{
			name: "failed with no attempts", sample: "failed",
			mutate: func(ev map[string]any) { data(ev)["attempts"] = json.Number("0") },
			want:   []string{"comet.report.failed event", "'/data/attempts'", "minimum"},
		},
		{
			name: "not JSON",
			raw:  `{"specversion":"1.0",`,
			want: []string{"event: decode"},
		},
		{
			name: "not an object",
			raw:  `[]`,
			want: []string{"event: at ''", "got array, want object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			if tt.mutate != nil {
				raw = mutate(t, tt.sample, tt.mutate)
			}
			err := docs.ValidateEvent(raw)
			if err == nil {
				t.Fatalf("ValidateEvent(%s) = nil, want an error", raw)
			}
			if !errors.Is(err, docs.ErrInvalid) {
				t.Errorf("ValidateEvent error %q does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ValidateEvent error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidateNumbersKeepTheirDigits(t *testing.T) {
	for _, lit := range []string{"12345678901234567890.10", "-0.000000000000000000001", "1e400", "125.50"} {
		row := []byte(`{"amount":` + lit + `}`)
		if err := docs.ValidateSnapshotRow(row); err != nil {
			t.Errorf("ValidateSnapshotRow(%s): %v", row, err)
		}
	}
	// A float64 would round this to 1; the table above has its neighbour
	// just above 1, which must fail.
	raw := mutate(t, "held", func(ev map[string]any) { data(ev)["threshold"] = json.Number("0.99999999999999999999") })
	if err := docs.ValidateEvent(raw); err != nil {
		t.Errorf("ValidateEvent(%s): %v", raw, err)
	}
}

func TestValidateSnapshotRow(t *testing.T) {
	tests := []struct {
		row  string
		want string // "" for a valid row, else what the error mentions
	}{
		{row: `{"amount":125.50,"dateOfBirth":"2002-07-24","lastName":"Rushesha","paidAt":"2026-11-20T09:30:00.000Z","note":null}`},
		{row: `{}`},
		{row: `{"a.b/c d":"any column key"}`},
		{row: `{"active":true}`, want: "'/active'"},
		{row: `{"meta":{"a":1}}`, want: "'/meta'"},
		{row: `{"":1}`, want: "minLength"},
		{row: `{"#result_id#":1}`, want: "#result_id#"},
		{row: `null`, want: "want object"},
		{row: `{"a":1`, want: "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.row, func(t *testing.T) {
			err := docs.ValidateSnapshotRow([]byte(tt.row))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidateSnapshotRow: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("ValidateSnapshotRow = nil, want an error mentioning %q", tt.want)
			case tt.want != "" && (!strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "snapshot row")):
				t.Errorf("ValidateSnapshotRow error %q does not mention %q and the snapshot row", err, tt.want)
			}
		})
	}
}

// TestProducerEventsValidate encodes events with the event package, as the
// producer does, and checks that the schemas accept them.
func TestProducerEventsValidate(t *testing.T) {
	now := time.Date(2026, 11, 26, 20, 0, 0, 123e6, time.UTC)
	schema, err := event.NewSchema([]event.Column{
		{Key: "feeRef", Name: "Fee", Type: event.TypeString},
		{Key: "amount", Name: "Amount", Type: event.TypeAmount},
		{Key: "due", Name: "Due", Type: event.TypeDate},
		{Key: "paidAt", Name: "Paid", Type: event.TypeDateTime},
	})
	if err != nil {
		t.Fatal(err)
	}
	vals := []event.Value{
		event.TextValue("FEE 2026/000001 B/2"),
		event.NumberValue("12345678901234567890.10"),
		event.TextValue(event.FormatDate(now.UnixMilli())),
		event.NullValue(),
	}
	keyer, err := event.NewKeyer(schema, []string{"feeRef"})
	if err != nil {
		t.Fatal(err)
	}
	after := schema.AppendRow(nil, vals)
	token, err := keyer.Token(vals, event.RowHash(after))
	if err != nil {
		t.Fatal(err)
	}
	content := event.ContentToken(event.RowHash(after), 3)
	const source = "comet://comet.faw.cymru/fees"
	id := func(parts ...string) string { return event.ID(append([]string{"fees"}, parts...)...) }
	rows := map[string]*event.RowEvent{
		"created": {Token: token, Op: event.OpCreated, Key: keyer.AppendKey(nil, vals), After: after},
		"updated": {Token: token, Op: event.OpUpdated, Key: keyer.AppendKey(nil, vals), Before: after, After: after, Changed: []string{"amount"}},
		"deleted": {Token: token, Op: event.OpDeleted, Key: keyer.AppendKey(nil, vals), Before: after},
		"content": {Token: content, Op: event.OpCreated, Key: after, After: after},
	}
	for name, e := range rows {
		t.Run(name, func(t *testing.T) {
			e.ID, e.Source, e.Time, e.Report, e.Sync = id(name), source, now, "fees", "s1"
			b := e.Append(nil)
			if err := docs.ValidateEvent(b); err != nil {
				t.Errorf("ValidateEvent(%s): %v", b, err)
			}
		})
	}
	t.Run("snapshot row", func(t *testing.T) {
		if err := docs.ValidateSnapshotRow(after); err != nil {
			t.Errorf("ValidateSnapshotRow(%s): %v", after, err)
		}
	})
	reports := map[event.Type]any{
		event.TypeSynced: event.Synced{Report: "fees", Sync: "s1", Started: now.Add(-time.Second), Finished: now.Add(123456789),
			Requests: 3, Pages: 3, TotalSize: 2100, Rows: 2100, Consistent: true, PageSize: 1000},
		event.TypeSchema:      event.SchemaChange{Report: "fees", Columns: schema.Columns, Previous: nil, Undeclared: []string{}},
		event.TypeUnavailable: event.Unavailable{Report: "fees", Status: 401, Reason: "unauthorized"},
		event.TypeHeld:        event.Held{Report: "fees", WouldDelete: 1900, RowsBefore: 2100, Threshold: 0.5, Phase: event.HoldStarted, Hold: "20261126T200000.000Z-1a2b3c4d"},
		event.TypeFailed:      event.Failed{Report: "fees", Since: now.Add(-time.Hour), Attempts: 2, Error: "fetch page 1: timeout"},
	}
	for typ, d := range reports {
		t.Run(string(typ), func(t *testing.T) {
			b, err := event.Encode(id(string(typ)), source, typ, now, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := docs.ValidateEvent(b); err != nil {
				t.Errorf("ValidateEvent(%s): %v", b, err)
			}
		})
	}
}

// schemaFiles reads the embedded schemas, by file name.
func schemaFiles(t *testing.T) map[string]map[string]any {
	t.Helper()
	names, err := fs.Glob(docs.Files, "schemas/v1/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no schemas embedded")
	}
	out := map[string]map[string]any{}
	for _, n := range names {
		b, err := docs.Files.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		doc, ok := decode(t, b).(map[string]any)
		if !ok {
			t.Fatalf("%s is not a JSON object", n)
		}
		out[path.Base(n)] = doc
	}
	return out
}

func TestDataSchema(t *testing.T) {
	files := schemaFiles(t)
	ids := map[string]bool{}
	for name, doc := range files {
		if got, want := doc["$id"], docs.SchemaBase+name; got != want {
			t.Errorf("%s: $id %v, want %s", name, got, want)
		}
		if got, want := doc["$schema"], "https://json-schema.org/draft/2020-12/schema"; got != want {
			t.Errorf("%s: $schema %v, want %s", name, got, want)
		}
		ids[docs.SchemaBase+name] = true
	}
	for _, typ := range eventTypes {
		u := docs.DataSchema(typ)
		if !ids[u] {
			t.Errorf("DataSchema(%q) = %q, the $id of no embedded schema", typ, u)
		}
		// The producer writes dataschema with the event package.
		if got := event.DataSchema(event.Type(typ)); got != u {
			t.Errorf("event.DataSchema(%q) = %q, docs.DataSchema = %q", typ, got, u)
		}
	}
	for _, typ := range event.Types {
		if !slices.Contains(eventTypes, string(typ)) {
			t.Errorf("event type %q has no data schema here", typ)
		}
	}
	if event.SchemaBase != docs.SchemaBase {
		t.Errorf("event.SchemaBase = %q, docs.SchemaBase = %q", event.SchemaBase, docs.SchemaBase)
	}
	for _, typ := range []string{"", "comet.row", "comet.row.moved", "comet.report.paused", "comet.report.", "comet.row.created "} {
		if got := docs.DataSchema(typ); got != "" {
			t.Errorf("DataSchema(%q) = %q, want \"\"", typ, got)
		}
	}
	// The envelope schema lists the same types.
	enum := files["cloudevent.json"]["properties"].(map[string]any)["type"].(map[string]any)["enum"].([]any)
	var listed []string
	for _, e := range enum {
		listed = append(listed, e.(string))
	}
	if !slices.Equal(listed, eventTypes) {
		t.Errorf("cloudevent.json types %v, want %v", listed, eventTypes)
	}
	// The report name pattern is the one the producer enforces.
	report := files["defs.json"]["$defs"].(map[string]any)["report"].(map[string]any)["pattern"]
	if report != event.NameRE.String() {
		t.Errorf("defs.json report pattern %v, event.NameRE %s", report, event.NameRE)
	}
}

// refs calls f with every "$ref" in v and the JSON pointer of where it is.
func refs(v any, at string, f func(ref, at string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				f(s, at)
				continue
			}
			refs(x, at+"/"+k, f)
		}
	case []any:
		for i, x := range v {
			refs(x, at+"/"+strconv.Itoa(i), f)
		}
	}
}

// pointer resolves a JSON pointer (a URL fragment) in doc.
func pointer(doc any, frag string) bool {
	if frag == "" {
		return true
	}
	if !strings.HasPrefix(frag, "/") {
		return false
	}
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch d := doc.(type) {
		case map[string]any:
			x, ok := d[tok]
			if !ok {
				return false
			}
			doc = x
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(d) {
				return false
			}
			doc = d[i]
		default:
			return false
		}
	}
	return true
}

func TestRefsResolve(t *testing.T) {
	files := schemaFiles(t)
	reached := map[string]bool{}
	// check resolves ref, found in file, against base; the target must be
	// an embedded schema (by its file name) and the fragment must exist.
	check := func(file, at, ref string, base *url.URL, target func(u *url.URL) (string, any)) {
		u, err := url.Parse(ref)
		if err != nil {
			t.Errorf("%s %s: $ref %q: %v", file, at, ref, err)
			return
		}
		if u.IsAbs() || u.Host != "" || strings.HasPrefix(u.Path, "/") {
			// Tools that resolve refs by file location (AsyncAPI parsers)
			// would fetch an absolute one.
			t.Errorf("%s %s: $ref %q is not relative", file, at, ref)
		}
		name, doc := target(base.ResolveReference(u))
		if doc == nil {
			t.Errorf("%s %s: $ref %q reaches no embedded file", file, at, ref)
			return
		}
		reached[name] = true
		if !pointer(doc, u.Fragment) {
			t.Errorf("%s %s: $ref %q: no %q in %s", file, at, ref, u.Fragment, name)
		}
	}
	byID := func(u *url.URL) (string, any) {
		name, ok := strings.CutPrefix(u.Scheme+"://"+u.Host+u.Path, docs.SchemaBase)
		if doc, found := files[name]; ok && found {
			return name, doc
		}
		return "", nil
	}
	for name, doc := range files {
		base, err := url.Parse(doc["$id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		refs(doc, "", func(ref, at string) { check(name, at, ref, base, byID) })
	}

	b, err := docs.Files.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var api any
	if err := yaml.Unmarshal(b, &api); err != nil {
		t.Fatal(err)
	}
	apiBase := &url.URL{Path: "/asyncapi.yaml"} // the embedded tree's root stands for docs/
	n := 0
	refs(api, "", func(ref, at string) {
		n++
		check("asyncapi.yaml", at, ref, apiBase, func(u *url.URL) (string, any) {
			if u.Path == apiBase.Path {
				return "asyncapi.yaml", api
			}
			name, ok := strings.CutPrefix(u.Path, "/schemas/v1/")
			if doc, found := files[name]; ok && found {
				return name, doc
			}
			return "", nil
		})
	})
	if n == 0 {
		t.Fatal("asyncapi.yaml has no $ref")
	}
	// Every schema is reachable from asyncapi.yaml, so the AsyncAPI check
	// validates them all.
	for name := range files {
		if !reached[name] {
			t.Errorf("schemas/v1/%s: no $ref reaches it", name)
		}
	}
}

// TestSchemasStayDraft07Compatible guards the schemaFormat asyncapi.yaml
// declares: AsyncAPI parsers read the schemas as draft-07, so they use only
// keywords that mean the same in draft-07 and 2020-12 ($defs being mere
// JSON-pointer targets), and no "$ref" with assertions beside it (draft-07
// ignores a $ref's siblings).
func TestSchemasStayDraft07Compatible(t *testing.T) {
	forbidden := []string{
		"prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
		"dependentSchemas", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
		"minContains", "maxContains", "contentSchema", "$vocabulary", "definitions",
	}
	annotations := []string{"$ref", "description", "title", "$comment", "examples"}
	var walk func(file, at string, v any)
	walk = func(file, at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			_, hasRef := v["$ref"]
			for k, x := range v {
				if slices.Contains(forbidden, k) {
					t.Errorf("%s %s: keyword %q", file, at, k)
				}
				if hasRef && !slices.Contains(annotations, k) {
					t.Errorf("%s %s: %q beside $ref", file, at, k)
				}
				// Names under properties and $defs are not keywords.
				if k == "properties" || k == "$defs" {
					for name, s := range x.(map[string]any) {
						walk(file, at+"/"+k+"/"+name, s)
					}
					continue
				}
				walk(file, at+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(file, at+"/"+strconv.Itoa(i), x)
			}
		}
	}
	for name, doc := range schemaFiles(t) {
		walk(name, "", doc)
	}
}

func FuzzValidateEvent(f *testing.F) {
	seeds := samples(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := docs.ValidateEvent(b)
		if err != nil && !errors.Is(err, docs.ErrInvalid) {
			t.Fatalf("ValidateEvent: %v, not ErrInvalid", err)
		}
	})
}
