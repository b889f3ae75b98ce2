package event

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestNumbersKeepEveryDigit(t *testing.T) {
	raw := []byte(`{"fee":1042.70,"id":12345678901234567890,"small":125,"name":"x","none":null}`)
	var row Row
	if err := json.Unmarshal(raw, &row); err != nil {
		t.Fatal(err)
	}
	if n, ok := row["fee"].Number(); !ok || n != "1042.70" {
		t.Errorf("fee %q", n)
	}
	if _, err := row["id"].Int64(); err == nil {
		t.Error("an id past 2^63 read as an int64")
	}
	if n, err := row["small"].Int64(); err != nil || n != 125 {
		t.Errorf("small %d, %v", n, err)
	}
	if r, err := row["fee"].Rat(); err != nil || r.String() != "10427/10" {
		t.Errorf("fee as a rational %v, %v", r, err)
	}
	if f, exact, err := row["fee"].Float64(); err != nil || exact || f != 1042.7 {
		t.Errorf("fee as a float %v exact %v, %v: 1042.70 is no exact float", f, exact, err)
	}
	if f, exact, _ := row["small"].Float64(); !exact || f != 125 {
		t.Errorf("small as a float %v exact %v", f, exact)
	}
	if _, err := row["name"].Int64(); !errors.Is(err, ErrNotNumber) {
		t.Errorf("text as a number: %v", err)
	}
	// Through a map of Any values and back, nothing is lost.
	b, err := json.Marshal(row.Map())
	if err != nil || string(b) != `{"fee":1042.70,"id":12345678901234567890,"name":"x","none":null,"small":125}` {
		t.Errorf("re-encoded as %s, %v", b, err)
	}
	// What a float64 decoder would have made of it, for contrast.
	var lossy map[string]any
	json.Unmarshal(raw, &lossy)
	if b, _ := json.Marshal(lossy); string(b) == `{"fee":1042.70,"id":12345678901234567890,"name":"x","none":null,"small":125}` {
		t.Error("map[string]any kept every digit: the test shows nothing")
	}
}
