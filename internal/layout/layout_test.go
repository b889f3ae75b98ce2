package layout

import (
	"slices"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/consumer"
	"github.com/cometstream/cometstream/event"
)

// TestRoundTrip: a layout read back is the one written; a corrupt one says
// which report and which part.
func TestRoundTrip(t *testing.T) {
	in := &consumer.Table{Report: "people", Key: []string{"id", "season"},
		Columns: []event.Column{{Key: "id", Name: "Id", Type: event.TypeNumber}, {Key: "x\"y", Name: "É", Type: event.TypeString}}}
	key, cols := Encode(in)
	out, err := Decode("people", key, cols)
	if err != nil || out.Report != "people" || !slices.Equal(out.Key, in.Key) || !slices.Equal(out.Columns, in.Columns) {
		t.Fatalf("read back %+v, %v", out, err)
	}
	if _, err := Decode("people", key, []byte("[{")); err == nil || !strings.Contains(err.Error(), "layout of people: columns") {
		t.Errorf("corrupt columns: %v", err)
	}
}
