package event

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRowEventRoundTrip(t *testing.T) {
	s, _ := NewSchema([]Column{{Key: "personId", Type: TypeNumber}, {Key: "lastName", Type: TypeString}, {Key: "dateOfBirth", Type: TypeDate}})
	before := []Value{NumberValue("191579"), TextValue("Rushesha"), TextValue("2002-07-24")}
	after := []Value{NumberValue("191579"), TextValue("Rushesha-Banda"), TextValue("2002-07-24")}
	k, _ := NewKeyer(s, []string{"personId"})
	e := RowEvent{
		ID: ID("players", "191579", "updated"), Source: "comet://comet.faw.cymru/players", Token: "191579",
		Time: time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC), Report: "players", Op: OpUpdated, Sync: "s1",
		Key: k.AppendKey(nil, after), Before: s.AppendRow(nil, before), After: s.AppendRow(nil, after), Changed: []string{"lastName"},
	}
	raw := e.Append(nil)
	if !json.Valid(raw) {
		t.Fatalf("not JSON: %s", raw)
	}
	got, err := Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, raw)
	}
	if got.Type != TypeUpdated || got.Subject != "191579" || got.Row == nil || got.Source != e.Source || !got.Time.Equal(e.Time) {
		t.Fatalf("decoded %+v", got)
	}
	if got.Row.Before["lastName"].Raw != "Rushesha" || got.Row.After["lastName"].Raw != "Rushesha-Banda" || got.Row.Key["personId"].Raw != "191579" {
		t.Errorf("row data %+v", got.Row)
	}
	if len(got.Row.Changed) != 1 || got.Row.Changed[0] != "lastName" {
		t.Errorf("changed %v", got.Row.Changed)
	}
	// The canonical row form re-encodes byte for byte through encoding/json.
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	_ = json.Unmarshal(generic["data"], &data)
	reenc, _ := json.Marshal(got.Row.After)
	if string(data["after"]) != string(reenc) {
		t.Errorf("after %s re-encodes as %s", data["after"], reenc)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       `{"specversion":`,
		"wrong version":  `{"specversion":"0.3","id":"x","type":"comet.row.created","data":{}}`,
		"no id":          `{"specversion":"1.0","type":"comet.row.created","data":{}}`,
		"unknown type":   `{"specversion":"1.0","id":"x","type":"comet.row.exploded","data":{}}`,
		"op mismatch":    `{"specversion":"1.0","id":"x","type":"comet.row.created","data":{"report":"p","op":"deleted","key":{"a":1},"before":{"a":1},"after":null}}`,
		"created before": `{"specversion":"1.0","id":"x","type":"comet.row.created","data":{"report":"p","op":"created","key":{"a":1},"before":{"a":1},"after":{"a":1}}}`,
		"no data":        `{"specversion":"1.0","id":"x","type":"comet.report.synced"}`,
		"bool value":     `{"specversion":"1.0","id":"x","type":"comet.row.created","data":{"report":"p","op":"created","key":{"a":true},"before":null,"after":{"a":true}}}`,
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: Decode accepted %s", name, in)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the consumer's event decoder: it must
// return an error or a consistent event, never panic.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/events/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		n := 0
		for _, set := range []bool{e.Row != nil, e.Synced != nil, e.Schema != nil, e.Unavailable != nil, e.Held != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d payloads set for type %q", n, e.Type)
		}
		if e.Row != nil && RowType(e.Row.Op) != e.Type {
			t.Fatalf("row op %q under type %q", e.Row.Op, e.Type)
		}
	})
}
