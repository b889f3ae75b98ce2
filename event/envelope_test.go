package event

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
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
		for _, set := range []bool{e.Row != nil, e.Synced != nil, e.Schema != nil, e.Unavailable != nil, e.Held != nil, e.Failed != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d payloads set for type %q", n, e.Type)
		}
		if e.Row != nil && e.Row.Op.Type() != e.Type {
			t.Fatalf("row op %q under type %q", e.Row.Op, e.Type)
		}
	})
}

// decodeReference is the straightforward decoder, with encoding/json, that
// the scanner-based one must agree with.
func decodeReference(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	e.Row = new(RowChange)
	return &e, json.Unmarshal(e.Data, e.Row)
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	texts := []string{"", "plain", `quo"te`, "back\\slash", "tab\t", "Đurić 🏴", "\u2028", "<&>", "bad \xff", "ctl \x01"}
	for i := range 2000 {
		row := func() []byte {
			vals := []Value{NumberValue(fmt.Sprint(r.IntN(1e6))), TextValue(texts[r.IntN(len(texts))]), {}, NumberValue("125.50"), TextValue("2002-07-24")}
			s, _ := NewSchema([]Column{{Key: "id", Type: TypeNumber}, {Key: "name\"x", Type: TypeString}, {Key: "n", Type: TypeString}, {Key: "fee", Type: TypeAmount}, {Key: "d", Type: TypeDate}})
			return s.AppendRow(nil, vals)
		}
		before, after := row(), row()
		ev := (&RowEvent{ID: fmt.Sprint("id", i), Source: "comet://h/r", Token: "t" + fmt.Sprint(i), Time: time.UnixMilli(r.Int64N(2e12)),
			Report: "r", Op: OpUpdated, Sync: "s", Key: []byte(`{"id":1}`), Before: before, After: after, Changed: []string{"name\"x"}}).Append(nil)
		got, err := Decode(ev)
		if err != nil {
			t.Fatalf("Decode: %v\n%s", err, ev)
		}
		want, err := decodeReference(ev)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		if got.ID != want.ID || got.Subject != want.Subject || !got.Time.Equal(want.Time) || got.Source != want.Source || got.Type != want.Type {
			t.Fatalf("attributes differ: %+v vs %+v", got, want)
		}
		if !reflect.DeepEqual(got.Row, want.Row) {
			t.Fatalf("row data differs:\n got %+v\nwant %+v", got.Row, want.Row)
		}
	}
}

func BenchmarkDecodeRowEvent(b *testing.B) {
	raw, _ := os.ReadFile("testdata/events/updated.json")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
