package config

import (
	"strings"
	"testing"
)

// TestLanes: reports that reach one COMET installation (the host of
// base_url, in any case, with or without a path or trailing slash) as one
// user share a lane, whatever their sources are called, at the lowest
// rate_limit among them; other hosts or users have lanes of their own.
func TestLanes(t *testing.T) {
	c, err := Parse(strings.NewReader(`
sources:
  - name: faw
    base_url: http://comet.example.org:8080
    rate_limit: 10
    reports:
      - {name: a, api_key: k1, key: [id], user: fed}
      - {name: b, api_key: k2, key: [id], user: club}
  - name: faw-slow
    base_url: HTTP://Comet.Example.org:8080/
    rate_limit: 6
    reports:
      - {name: c, api_key: k3, key: [id], user: fed}
  - name: other
    base_url: http://comet.example.org:9090
    reports:
      - {name: d, api_key: k4, key: [id], user: fed}
`))
	if err != nil {
		t.Fatal(err)
	}
	lanes := c.Lanes()
	want := map[string]Lane{
		"a": {Source: "faw", User: "fed", RateLimit: 6, Sources: []string{"faw", "faw-slow"}},
		"b": {Source: "faw", User: "club", RateLimit: 10, Sources: []string{"faw"}},
		"c": {Source: "faw", User: "fed", RateLimit: 6, Sources: []string{"faw", "faw-slow"}},
		"d": {Source: "other", User: "fed", RateLimit: 10, Sources: []string{"other"}},
	}
	for name, w := range want {
		g := lanes[name]
		if g.Source != w.Source || g.User != w.User || g.RateLimit != w.RateLimit || strings.Join(g.Sources, ",") != strings.Join(w.Sources, ",") {
			t.Errorf("report %s: lane %+v, want %+v", name, g, w)
		}
	}
	if len(lanes) != len(want) {
		t.Errorf("%d lanes for %d reports", len(lanes), len(want))
	}
}
