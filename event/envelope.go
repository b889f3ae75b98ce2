package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cometstream/cometstream/internal/jsonscan"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// ContentType is the NATS Content-Type header of every event message.
const ContentType = "application/cloudevents+json"

// TimeLayout renders the CloudEvents "time" attribute.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Event is a decoded CloudEvents envelope. Exactly one of the typed payloads
// (Row, Synced, Schema, Unavailable, Held, Failed) is set, according to Type.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            Type      `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// DataSchema is the URL of the JSON Schema of Data (see DataSchema).
	DataSchema string          `json:"dataschema,omitempty"`
	Data       json.RawMessage `json:"data"`

	Row         *RowChange    `json:"-"`
	Synced      *Synced       `json:"-"`
	Schema      *SchemaChange `json:"-"`
	Unavailable *Unavailable  `json:"-"`
	Held        *Held         `json:"-"`
	Failed      *Failed       `json:"-"`
}

// Row is a decoded row: column key to value.
type Row map[string]Value

// RowChange is the data of a row event.
type RowChange struct {
	Report  string   `json:"report"`
	Op      Op       `json:"op"`
	Key     Row      `json:"key"`
	Before  Row      `json:"before"`
	After   Row      `json:"after"`
	Changed []string `json:"changed"`
	Sync    string   `json:"sync"`
}

// Synced is the data of a comet.report.synced receipt: one per pass.
type Synced struct {
	Report      string    `json:"report"`
	Sync        string    `json:"sync"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Requests    int       `json:"requests"`
	Pages       int       `json:"pages"`
	TotalSize   int       `json:"total_size"`
	Rows        int       `json:"rows"`
	Created     int       `json:"created"`
	Updated     int       `json:"updated"`
	Deleted     int       `json:"deleted"`
	InvalidRows int       `json:"invalid_rows"`
	// InvalidCells counts cells that did not convert to their column's
	// type: published as null, their rows kept.
	InvalidCells  int  `json:"invalid_cells"`
	DuplicateKeys int  `json:"duplicate_keys"`
	Consistent    bool `json:"consistent"`
	DeletesHeld   int  `json:"deletes_held"`
	// PageSize is the rows per page COMET served (fewer than asked on
	// deployments that cap it).
	PageSize int `json:"page_size"`
	// Error says why the pass did not complete; empty when it did.
	Error string `json:"error,omitempty"`
}

// SchemaChange is the data of a comet.report.schema event.
type SchemaChange struct {
	Report   string   `json:"report"`
	Columns  []Column `json:"columns"`
	Previous []Column `json:"previous"`
	// Undeclared lists, sorted, the fields rows carried that columnKeys did
	// not list; they are left out of the rows.
	Undeclared []string `json:"undeclared"`
}

// Failed is the data of a comet.report.failed event: published when a
// report starts failing, and at most hourly while it goes on.
type Failed struct {
	Report string `json:"report"`
	// Since is when the first failing pass of this run of failures ended.
	Since time.Time `json:"since"`
	// Attempts counts the failing passes so far.
	Attempts int `json:"attempts"`
	// Error is the last pass's error, without the API key.
	Error string `json:"error"`
}

// Unavailable is the data of a comet.report.unavailable event.
type Unavailable struct {
	Report string `json:"report"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
}

// Held is the data of a comet.report.held event, published when a hold of
// deletes starts, is released by an operator, or ends (a pass under the
// threshold) — not when its size changes.
type Held struct {
	Report      string  `json:"report"`
	WouldDelete int     `json:"would_delete"`
	RowsBefore  int     `json:"rows_before"`
	Threshold   float64 `json:"threshold"`
	// Phase is HoldStarted, HoldReleased or HoldEnded.
	Phase HoldPhase `json:"phase"`
	// Hold is the sync of the pass that started the hold: it names the hold
	// a release applies to.
	Hold string `json:"hold"`
}

// HoldPhase says what a held event reports.
type HoldPhase string

// The phases of a hold.
const (
	HoldStarted  HoldPhase = "started"
	HoldReleased HoldPhase = "released"
	HoldEnded    HoldPhase = "ended"
)

// MaxEventSize bounds what Decode accepts.
const MaxEventSize = 64 << 20

// Decode parses and validates an event as the producer publishes it. It
// returns an error, never panics, on malformed input. Row events, the bulk
// of the stream, are read by a scanner without reflection; report events
// through encoding/json.
func Decode(b []byte) (*Event, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("event of %d bytes exceeds %d", len(b), MaxEventSize)
	}
	s, e, dataAt, err := decodeEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if e.SpecVersion != SpecVersion {
		return nil, fmt.Errorf("decode event: specversion %q, want %q", e.SpecVersion, SpecVersion)
	}
	if e.ID == "" {
		return nil, errors.New("decode event: empty id")
	}
	if dataAt < 0 || len(bytes.TrimSpace(e.Data)) == 0 {
		return nil, fmt.Errorf("decode event %s: no data", e.ID)
	}
	var target any
	switch e.Type {
	case TypeCreated, TypeUpdated, TypeDeleted:
		s.I = dataAt
		if e.Row, err = decodeRowChange(s); err != nil {
			return nil, fmt.Errorf("decode event %s data: %w", e.ID, err)
		}
		if err := e.Row.validate(e.Type); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", e.ID, err)
		}
		return e, nil
	case TypeSynced:
		e.Synced = new(Synced)
		target = e.Synced
	case TypeSchema:
		e.Schema = new(SchemaChange)
		target = e.Schema
	case TypeUnavailable:
		e.Unavailable = new(Unavailable)
		target = e.Unavailable
	case TypeHeld:
		e.Held = new(Held)
		target = e.Held
	case TypeFailed:
		e.Failed = new(Failed)
		target = e.Failed
	default:
		return nil, fmt.Errorf("decode event %s: unknown type %q", e.ID, e.Type)
	}
	if err := json.Unmarshal(e.Data, target); err != nil {
		return nil, fmt.Errorf("decode event %s data: %w", e.ID, err)
	}
	return e, nil
}

// decodeEnvelope reads the CloudEvents attributes and finds the data.
func decodeEnvelope(b []byte) (*jsonscan.Scanner, *Event, int, error) {
	s := jsonscan.New(b)
	e := &Event{}
	dataAt := -1
	err := s.Object(func(name string) (err error) {
		var field *string
		switch name {
		case "specversion":
			field = &e.SpecVersion
		case "id":
			field = &e.ID
		case "source":
			field = &e.Source
		case "type":
			field = (*string)(&e.Type)
		case "subject":
			field = &e.Subject
		case "datacontenttype":
			field = &e.DataContentType
		case "dataschema":
			field = &e.DataSchema
		case "time":
			var t string
			if t, err = optString(s); err != nil {
				return err
			}
			if t != "" {
				if e.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
					return fmt.Errorf("time: %w", err)
				}
			}
		case "data":
			s.WS()
			dataAt = s.I
			if err := s.Skip(); err != nil {
				return err
			}
			e.Data = json.RawMessage(b[dataAt:s.I])
		default:
			return s.Skip()
		}
		if field != nil {
			if *field, err = optString(s); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	if s.Peek() != 0 {
		return nil, nil, 0, s.Errorf("data after the event")
	}
	return s, e, dataAt, nil
}

// optString reads a string or null ("").
func optString(s *jsonscan.Scanner) (string, error) {
	if s.Peek() == 'n' {
		return "", s.Literal("null")
	}
	return s.Str()
}

// decodeRowChange reads a row event's data.
func decodeRowChange(s *jsonscan.Scanner) (*RowChange, error) {
	r := &RowChange{}
	err := s.Object(func(name string) error {
		var err error
		switch name {
		case "report":
			r.Report, err = optString(s)
		case "op":
			var op string
			op, err = optString(s)
			r.Op = Op(op)
		case "sync":
			r.Sync, err = optString(s)
		case "key":
			r.Key, err = decodeRow(s)
		case "before":
			r.Before, err = decodeRow(s)
		case "after":
			r.After, err = decodeRow(s)
		case "changed":
			r.Changed, err = s.Strings()
		default:
			err = s.Skip()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// decodeRow reads a row object (nil for null).
func decodeRow(s *jsonscan.Scanner) (Row, error) {
	if s.Peek() == 'n' {
		return nil, s.Literal("null")
	}
	row := Row{}
	err := s.Object(func(col string) error {
		v, err := s.Scalar()
		if err != nil {
			return fmt.Errorf("column %q: %w", jsonscan.Truncate(col, 64), err)
		}
		switch v.Kind {
		case jsonscan.KindNull:
			row[col] = Value{}
		case jsonscan.KindNumber:
			row[col] = NumberValue(v.Text)
		case jsonscan.KindString:
			row[col] = TextValue(v.Text)
		default:
			return fmt.Errorf("column %q: unsupported %s value", jsonscan.Truncate(col, 64), v.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

func (r *RowChange) validate(typ Type) error {
	if r.Op.Type() != typ {
		return fmt.Errorf("op %q does not match type %q", r.Op, typ)
	}
	if r.Report == "" {
		return errors.New("row event without report")
	}
	if len(r.Key) == 0 {
		return errors.New("row event without key")
	}
	switch r.Op {
	case OpCreated:
		if r.After == nil || r.Before != nil {
			return errors.New("created event needs after and no before")
		}
	case OpUpdated:
		if r.After == nil || r.Before == nil {
			return errors.New("updated event needs before and after")
		}
	case OpDeleted:
		if r.Before == nil || r.After != nil {
			return errors.New("deleted event needs before and no after")
		}
	}
	return nil
}

// Encode renders a report event (synced, schema, unavailable, held, failed) as a
// CloudEvents JSON object. Row events use RowEvent.Append for speed.
func Encode(id, source string, typ Type, t time.Time, data any) ([]byte, error) {
	d, err := marshalNoHTML(data)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256+len(d))
	b = appendHeader(b, id, source, typ, "", t)
	b = append(b, d...)
	return append(b, '}'), nil
}

func marshalNoHTML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func appendHeader(b []byte, id, source string, typ Type, subject string, t time.Time) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = AppendString(b, id)
	b = append(b, `,"source":`...)
	b = AppendString(b, source)
	b = append(b, `,"type":`...)
	b = AppendString(b, string(typ))
	if subject != "" {
		b = append(b, `,"subject":`...)
		b = AppendString(b, subject)
	}
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","datacontenttype":"application/json","dataschema":`...)
	b = AppendString(b, DataSchema(typ))
	b = append(b, `,"data":`...)
	return b
}

// RowEvent is a row event ready to encode. Key, Before and After are canonical
// row JSON (nil for a missing before or after).
type RowEvent struct {
	ID      string
	Source  string
	Token   string
	Time    time.Time
	Report  string
	Op      Op
	Sync    string
	Key     []byte
	Before  []byte
	After   []byte
	Changed []string
}

// Append appends the event's CloudEvents JSON to b.
func (e *RowEvent) Append(b []byte) []byte {
	b = appendHeader(b, e.ID, e.Source, e.Op.Type(), e.Token, e.Time)
	b = append(b, `{"report":`...)
	b = AppendString(b, e.Report)
	b = append(b, `,"op":`...)
	b = AppendString(b, string(e.Op))
	b = append(b, `,"key":`...)
	b = append(b, e.Key...)
	b = append(b, `,"before":`...)
	b = appendRaw(b, e.Before)
	b = append(b, `,"after":`...)
	b = appendRaw(b, e.After)
	b = append(b, `,"changed":[`...)
	for i, c := range e.Changed {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c)
	}
	b = append(b, `],"sync":`...)
	b = AppendString(b, e.Sync)
	return append(b, "}}"...)
}

func appendRaw(b, raw []byte) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}
