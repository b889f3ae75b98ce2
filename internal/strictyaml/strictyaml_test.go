package strictyaml

import (
	"strings"
	"testing"
	"time"
)

type doc struct {
	Endpoints []struct {
		Name    string            `yaml:"name"`
		Timeout time.Duration     `yaml:"timeout"`
		Retry   []time.Duration   `yaml:"retry"`
		Headers map[string]string `yaml:"headers"`
		Ordered bool              `yaml:"ordered"`
	} `yaml:"endpoints"`
}

func TestDecodeNamesTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"endpoints:\n  - name: crm\n    urll: x\n", `endpoints[0].urll (line 3): unknown field "urll"`},
		{"endpoints:\n  - name: crm\n    timeout: 10\n", `endpoints[0].timeout (line 3): must be a duration such as 90s or 5m, not "10" (write a unit: 10s)`},
		{"endpoints:\n  - name: crm\n    headers: [a]\n", `endpoints[0].headers (line 3): must be a mapping, not a list`},
		{"endpoints:\n  - name: crm\n    ordered: sometimes\n", `endpoints[0].ordered (line 3): must be true or false, not "sometimes"`},
		{"endpoints: {name: crm}\n", `(line 1): must be a list, not a mapping`},
		{"endpoints:\n  - name: [crm\n", `did not find expected`}, // a syntax error keeps the parser's words
	} {
		var d doc
		err := Decode([]byte(tc.yaml), &d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%q) = %v, want it to say %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "not found in type") {
			t.Errorf("Decode(%q) names Go types: %v", tc.yaml, err)
		}
	}
}

func TestDecodeEmptyAndValid(t *testing.T) {
	var d doc
	if err := Decode(nil, &d); err != nil {
		t.Fatalf("an empty document: %v", err)
	}
	if err := Decode([]byte("endpoints:\n  - name: crm\n    timeout: 5s\n    retry: [1s, 1m]\n"), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Endpoints) != 1 || d.Endpoints[0].Timeout != 5*time.Second || len(d.Endpoints[0].Retry) != 2 {
		t.Errorf("decoded %+v", d)
	}
}
