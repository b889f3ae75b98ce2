package docs

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cometstream/cometstream/event"
)

// Files holds schemas/v1/*.json and asyncapi.yaml.
//
//go:embed schemas/v1/*.json asyncapi.yaml
var Files embed.FS

// SchemaBase is the URL the schemas' $ids start with: the $id of
// schemas/v1/<file> is SchemaBase + <file>. The event package owns it.
const SchemaBase = event.SchemaBase

// schemaDir is where the schemas are in Files.
const schemaDir = "schemas/v1"

// Schema files that are not the data of an event type.
const (
	envelopeFile    = "cloudevent.json"
	snapshotRowFile = "snapshot-row.json"
)

// dataFiles maps each CloudEvents type to the schema file of its data, as
// event.DataSchema names it.
var dataFiles = func() map[string]string {
	m := map[string]string{}
	for _, t := range event.Types {
		m[string(t)] = path.Base(event.DataSchema(t))
	}
	return m
}()

// rowTypePrefix starts the type of every row event; the rest is the op.
const rowTypePrefix = "comet.row."

// DataSchema returns the URL of the JSON Schema of the data of events of
// the given CloudEvents type, which those events carry in dataschema, or ""
// for a type cometstream does not publish.
func DataSchema(eventType string) string { return event.DataSchema(event.Type(eventType)) }

// ErrInvalid is wrapped by the errors ValidateEvent and ValidateSnapshotRow
// return when the input does not match its schema.
var ErrInvalid = errors.New("invalid")

// ValidateEvent checks that raw is an event as cometstream publishes it: the
// envelope against cloudevent.json, data against the schema its type names,
// dataschema equal to DataSchema(type), a row event's op equal to the end of
// its type, and data's report equal to the report source names. The error
// wraps ErrInvalid and names the event's type and each member that failed,
// as a JSON pointer ("/data/before"); it wraps a *jsonschema.ValidationError
// when a schema rejected the event. Other errors mean the embedded schemas do
// not compile, a defect of this package.
func ValidateEvent(raw []byte) error {
	s, doc, err := decode("event", raw)
	if err != nil {
		return err
	}
	ev, _ := doc.(map[string]any)
	what := describe(ev)
	if err := s.envelope.Validate(doc); err != nil {
		return invalid(what, doc, nil, err)
	}
	typ := ev["type"].(string) // the envelope schema requires one of the known types
	data, ok := s.data[typ]
	if !ok {
		return fmt.Errorf("%w %s: no data schema for the type", ErrInvalid, what)
	}
	if got, want := ev["dataschema"], DataSchema(typ); got != want {
		return fmt.Errorf("%w %s: at '/dataschema': %v, want %s", ErrInvalid, what, got, want)
	}
	if err := data.Validate(ev["data"]); err != nil {
		return invalid(what, doc, []string{"data"}, err)
	}
	// Rules that span the envelope and data, which no one schema sees.
	d := ev["data"].(map[string]any) // every data schema requires an object
	if op, isRow := strings.CutPrefix(typ, rowTypePrefix); isRow && d["op"] != op {
		return fmt.Errorf("%w %s: at '/data/op': %q does not match the type", ErrInvalid, what, d["op"])
	}
	source := ev["source"].(string)
	if report := source[strings.LastIndexByte(source, '/')+1:]; d["report"] != report {
		return fmt.Errorf("%w %s: at '/data/report': %q, but source %q names report %q", ErrInvalid, what, d["report"], source, report)
	}
	return nil
}

// ValidateSnapshotRow checks that raw is a value of a report's KV bucket: a
// row (snapshot-row.json). The error wraps ErrInvalid and names each member
// that failed.
func ValidateSnapshotRow(raw []byte) error {
	s, doc, err := decode("snapshot row", raw)
	if err != nil {
		return err
	}
	if err := s.snapshotRow.Validate(doc); err != nil {
		return invalid("snapshot row", doc, nil, err)
	}
	return nil
}

// decode returns the compiled schemas and raw decoded for them (numbers as
// json.Number); what names the input in the error when raw is not JSON.
func decode(what string, raw []byte) (*schemas, any, error) {
	s, err := compiled()
	if err != nil {
		return nil, nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("%w %s: decode: %w", ErrInvalid, what, err)
	}
	return s, doc, nil
}

// describe names an event in errors: its type and id when it has them.
func describe(ev map[string]any) string {
	what := "event"
	if typ, ok := ev["type"].(string); ok {
		what = truncate(typ) + " event"
	}
	if id, ok := ev["id"].(string); ok {
		what += fmt.Sprintf(" %q", truncate(id))
	}
	return what
}

// truncate shortens what errors quote from the input.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// invalid reports a schema's verdict on doc, or on the member of doc at
// under: each innermost failure with the location of the member in doc.
func invalid(what string, doc any, under []string, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%w %s: %w", ErrInvalid, what, err)
	}
	var problems []string
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		leaf := *e
		leaf.InstanceLocation = append(slices.Clip(under), e.InstanceLocation...)
		// A leaf renders as "at '<pointer>': <what is wrong>".
		p := leaf.Error()
		// The library renders numbers in messages as floats ("maximum: got
		// 1, want 1" for 1.00000000000000000001): show the digits.
		if n, ok := member(doc, leaf.InstanceLocation).(json.Number); ok && !strings.Contains(p, string(n)) {
			p += fmt.Sprintf(" (the value is %s)", truncate(string(n)))
		}
		if !seen[p] {
			seen[p] = true
			problems = append(problems, p)
		}
	}
	walk(ve)
	return &validationError{msg: fmt.Sprintf("%s %s: %s", ErrInvalid, what, strings.Join(problems, "; ")), err: ve}
}

// member returns the value at a location in a decoded JSON document, or nil.
func member(doc any, loc []string) any {
	for _, tok := range loc {
		switch d := doc.(type) {
		case map[string]any:
			doc = d[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(d) {
				return nil
			}
			doc = d[i]
		default:
			return nil
		}
	}
	return doc
}

// validationError carries a compact message and wraps both ErrInvalid and
// the schema's full verdict.
type validationError struct {
	msg string
	err *jsonschema.ValidationError
}

func (e *validationError) Error() string   { return e.msg }
func (e *validationError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// schemas are the compiled schemas.
type schemas struct {
	envelope    *jsonschema.Schema
	snapshotRow *jsonschema.Schema
	data        map[string]*jsonschema.Schema // by CloudEvents type
}

var (
	compileOnce sync.Once
	compiledSet *schemas
	compileErr  error
)

// compiled compiles the embedded schemas on first use.
func compiled() (*schemas, error) {
	compileOnce.Do(func() {
		compiledSet, compileErr = compile()
		if compileErr != nil {
			compileErr = fmt.Errorf("compile embedded schemas: %w", compileErr)
		}
	})
	return compiledSet, compileErr
}

func compile() (*schemas, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(embeddedOnly{})
	files, err := fs.Glob(Files, schemaDir+"/*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range files {
		b, err := Files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if want := SchemaBase + path.Base(name); id != want {
			return nil, fmt.Errorf("%s: $id %q, want %q", name, id, want)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	s := &schemas{data: make(map[string]*jsonschema.Schema, len(dataFiles))}
	if s.envelope, err = c.Compile(SchemaBase + envelopeFile); err != nil {
		return nil, err
	}
	if s.snapshotRow, err = c.Compile(SchemaBase + snapshotRowFile); err != nil {
		return nil, err
	}
	for typ := range dataFiles {
		if s.data[typ], err = c.Compile(DataSchema(typ)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// embeddedOnly refuses every URL: all schemas are added from Files, so a
// $ref to anything else is a defect, never a download.
type embeddedOnly struct{}

func (embeddedOnly) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is not an embedded schema", url)
}
