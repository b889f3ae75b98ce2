package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
data_dir: /tmp/x
nats:
  stream: COMET
  duplicate_window: 30s
sources:
  - name: faw
    base_url: https://comet.faw.cymru/
    reports:
      - name: players
        api_key_env: COMET_PLAYERS_KEY
        key: [personId]
        interval: 90s
      - name: events
        api_key_file: /run/secrets/events
        user: second
        key: ["*"]
        max_delete_fraction: 0.1
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Sources[0].Reports[0]
	if c.NATS.Listen != DefaultListen || c.NATS.SubjectPrefix != "comet" || c.NATS.DuplicateWindow != 30*time.Second || c.HTTP.Listen != DefaultHTTPListen {
		t.Errorf("nats defaults %+v", c.NATS)
	}
	if c.Sources[0].RateLimit != 10 || r.User != "default" || r.PageSize != 1000 || r.Interval != 90*time.Second || *r.MaxDeleteFraction != 0.5 {
		t.Errorf("report defaults %+v", r)
	}
	if f := *c.Sources[0].Reports[1].MaxDeleteFraction; f != 0.1 {
		t.Errorf("max_delete_fraction %v", f)
	}
}

func TestPathParamsTimeout(t *testing.T) {
	c, err := Parse(strings.NewReader(strings.Replace(strings.Replace(good, "interval: 90s",
		"interval: 90s\n        path: /data-backend/api/public/areports/run/4711/{page}/{size}/\n        params: {registrationStatus: label.confirmed, season: 2026, code: 007}", 1),
		"base_url: https://comet.faw.cymru/", "base_url: https://comet.faw.cymru/\n    timeout: 120s", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Sources[0].Reports[0]
	if r.Path != "/data-backend/api/public/areports/run/4711/{page}/{size}/" || r.Params["registrationStatus"] != "label.confirmed" || r.Params["season"] != "2026" || r.Params["code"] != "007" {
		t.Errorf("report %+v", r)
	}
	if c.Sources[0].Timeout != 120*time.Second {
		t.Errorf("timeout %s", c.Sources[0].Timeout)
	}
	if other := c.Sources[0].Reports[1]; other.Path != DefaultPath || other.Params != nil {
		t.Errorf("defaults: path %q params %v", other.Path, other.Params)
	}
}

func TestDraftNeedsNoKey(t *testing.T) {
	draft := strings.Replace(good, "key: [personId]", "", 1)
	if _, err := Parse(strings.NewReader(draft)); err == nil {
		t.Fatal("Parse accepted a report without a key")
	}
	c, err := ParseDraft(strings.NewReader(draft))
	if err != nil {
		t.Fatalf("ParseDraft: %v", err)
	}
	if len(c.Sources[0].Reports[0].Key) != 0 {
		t.Errorf("key %v", c.Sources[0].Reports[0].Key)
	}
	if _, err := ParseDraft(strings.NewReader(strings.Replace(draft, "90s", "10ms", 1))); err == nil {
		t.Error("ParseDraft skipped the other checks")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct{ name, yaml, field string }{
		{"unknown field", strings.Replace(good, "data_dir:", "dta_dir: x\ndata_dir:", 1), "dta_dir"},
		{"bad duration", strings.Replace(good, "90s", "ninety", 1), "ninety"},
		{"no key", strings.Replace(good, "key: [personId]", "", 1), "sources[0].reports[0].key"},
		{"star with others", strings.Replace(good, `key: ["*"]`, `key: ["*", id]`, 1), "sources[0].reports[1].key[0]"},
		{"bad name", strings.Replace(good, "name: players", "name: Players!", 1), "sources[0].reports[0].name"},
		{"duplicate name", strings.Replace(good, "name: events", "name: players", 1), "sources[0].reports[1].name"},
		{"two secrets", strings.Replace(good, "api_key_env: COMET_PLAYERS_KEY", "api_key_env: A\n        api_key: B", 1), "sources[0].reports[0].api_key_env"},
		{"page size", strings.Replace(good, "interval: 90s", "interval: 90s\n        page_size: 1001", 1), "sources[0].reports[0].page_size"},
		{"fraction", strings.Replace(good, "0.1", "1.5", 1), "sources[0].reports[1].max_delete_fraction"},
		{"interval", strings.Replace(good, "90s", "10ms", 1), "sources[0].reports[0].interval"},
		{"base url", strings.Replace(good, "https://comet.faw.cymru/", "comet.faw.cymru", 1), "sources[0].base_url"},
		{"prefix", strings.Replace(good, "stream: COMET", "stream: COMET\n  subject_prefix: a.b", 1), "nats.subject_prefix"},
		{"sync", strings.Replace(good, "stream: COMET", "stream: COMET\n  sync: sometimes", 1), "nats.sync"},
		{"no sources", "data_dir: x\n", "sources"},
		{"path without placeholders", strings.Replace(good, "interval: 90s", "interval: 90s\n        path: /data-backend/api/public/areports/run/", 1), "sources[0].reports[0].path"},
		{"path twice page", strings.Replace(good, "interval: 90s", "interval: 90s\n        path: /run/{page}/{page}/{size}/", 1), "sources[0].reports[0].path"},
		{"path with query", strings.Replace(good, "interval: 90s", "interval: 90s\n        path: /run/{page}/{size}/?x=1", 1), "sources[0].reports[0].path"},
		{"path relative", strings.Replace(good, "interval: 90s", "interval: 90s\n        path: run/{page}/{size}/", 1), "sources[0].reports[0].path"},
		{"param API_KEY", strings.Replace(good, "interval: 90s", "interval: 90s\n        params: {API_KEY: x}", 1), `sources[0].reports[0].params["API_KEY"]`},
		{"params not strings", strings.Replace(good, "interval: 90s", "interval: 90s\n        params: {status: [a, b]}", 1), "sources[0].reports[0].params.status (line 14): must be a string, not a list"},
		{"misspelt field", strings.Replace(good, "interval: 90s", "intervall: 90s", 1), `sources[0].reports[0].intervall (line 13): unknown field "intervall"`},
		{"duration without unit", strings.Replace(good, "interval: 90s", "interval: 10", 1), "sources[0].reports[0].interval (line 13): must be a duration such as 90s or 5m, not \"10\" (write a unit: 10s)"},
		{"memory limit unit", "memory_limit: 720 megs\n" + good, "memory_limit"},
		{"memory limit tiny", "memory_limit: 1MiB\n" + good, "memory_limit: 1MiB is below 64MiB"},
		{"timeout", strings.Replace(good, "base_url: https://comet.faw.cymru/", "base_url: https://comet.faw.cymru/\n    timeout: -1s", 1), "sources[0].timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %q", err, tt.field)
			}
		})
	}
}

func TestResolveAPIKey(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	os.WriteFile(path, []byte("file-secret\n"), 0o644)
	t.Setenv("TEST_COMET_KEY", "env-secret")

	for _, tt := range []struct {
		r    Report
		want string
		warn string
	}{
		{Report{APIKeyEnv: "TEST_COMET_KEY"}, "env-secret", ""},
		{Report{APIKeyFile: path}, "file-secret", "readable by others"},
		{Report{APIKey: "inline-secret"}, "inline-secret", "inline"},
	} {
		logs.Reset()
		got, err := tt.r.ResolveAPIKey("r", log)
		if err != nil || got != tt.want {
			t.Errorf("%+v: %q, %v", tt.r, got, err)
		}
		if tt.warn != "" && !strings.Contains(logs.String(), tt.warn) {
			t.Errorf("%+v: no warning %q in %q", tt.r, tt.warn, logs.String())
		}
		if strings.Contains(logs.String(), tt.want) {
			t.Errorf("the key was logged: %s", logs.String())
		}
	}
	_, err := Report{APIKeyEnv: "TEST_COMET_UNSET"}.ResolveAPIKey("sources[0].reports[0]", log)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "sources[0].reports[0].api_key_env") {
		t.Errorf("unset env: %v", err)
	}
}

// TestParseOpsFields: nats.monitor and http.pprof are off unless set, and
// their errors, and system_account's, name the field.
func TestParseOpsFields(t *testing.T) {
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.Monitor != "" || c.HTTP.Pprof {
		t.Errorf("defaults: nats.monitor %q, http.pprof %v; want off", c.NATS.Monitor, c.HTTP.Pprof)
	}
	on := strings.Replace(good, "stream: COMET", "stream: COMET\n  monitor: 127.0.0.1:8222\n  embedded:\n    users:\n      - {name: sys, password_env: SYS_PW, role: admin, system_account: true}", 1) +
		"http:\n  pprof: true\n"
	c, err = Parse(strings.NewReader(on))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.Monitor != "127.0.0.1:8222" || !c.HTTP.Pprof || c.HTTP.Listen != DefaultHTTPListen || !c.NATS.Embedded.Users[0].SystemAccount {
		t.Errorf("set: nats.monitor %q, http %+v, users %+v", c.NATS.Monitor, c.HTTP, c.NATS.Embedded.Users)
	}

	tests := []struct{ name, yaml, says string }{
		{"monitor not host:port", strings.Replace(good, "stream: COMET", "stream: COMET\n  monitor: 8222", 1), `nats.monitor: "8222" is not host:port`},
		{"monitor bad port", strings.Replace(good, "stream: COMET", "stream: COMET\n  monitor: 127.0.0.1:http", 1), `nats.monitor: "127.0.0.1:http" is not host:port`},
		{"monitor on the client port", strings.Replace(good, "stream: COMET", "stream: COMET\n  monitor: 127.0.0.1:4222", 1), `nats.monitor: "127.0.0.1:4222" is nats.listen's address too`},
		{"pprof not a bool", good + "http:\n  pprof: sometimes\n", "http.pprof"},
		{"system account for a subscriber", strings.Replace(good, "stream: COMET", "stream: COMET\n  embedded:\n    users:\n      - {name: sink, password_env: P, role: subscriber, system_account: true}", 1),
			"nats.embedded.users[0].system_account: only an admin may use the system account, not a subscriber"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v, want ErrInvalid saying %q", err, tt.says)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
	}{
		{"", 720 << 20}, // the default
		{"memory_limit: 720MiB", 720 << 20},
		{"memory_limit: 1GiB", 1 << 30},
		{"memory_limit: 1.5GiB", 3 << 29},
		{"memory_limit: 800MB", 800e6},
		{"memory_limit: 512 MiB", 512 << 20},
		{"memory_limit: 100000000", 100000000},
		{"memory_limit: off", 0},
		{"memory_limit: 0", 0},
	} {
		c, err := Parse(strings.NewReader(tc.line + "\n" + good))
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if got := c.MemoryLimitBytes(); got != tc.want {
			t.Errorf("%q: MemoryLimitBytes = %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{720 << 20: "720MiB", 1 << 30: "1GiB", 1536 << 20: "1536MiB", 800e6: "781250KiB", 1000: "1000B", 0: "0B", 3 << 10: "3KiB"} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d) = %q, want %q", int64(b), got, want)
		}
	}
}

// TestRetention: nats.max_age and nats.max_bytes are off unless set, take a
// duration and a size, and their errors name the field.
func TestRetention(t *testing.T) {
	c, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.MaxAge != 0 || c.NATS.MaxBytesValue() != 0 {
		t.Errorf("defaults: max_age %s, max_bytes %d; want 0 (unlimited)", c.NATS.MaxAge, c.NATS.MaxBytesValue())
	}
	for _, tc := range []struct {
		lines string
		age   time.Duration
		bytes int64
	}{
		{"  max_age: 168h\n  max_bytes: 10GiB", 168 * time.Hour, 10 << 30},
		{"  max_age: 30s\n  max_bytes: 5000000", 30 * time.Second, 5e6},
		{"  max_bytes: 0", 0, 0},
		{"  max_bytes: 2 MB", 0, 2e6},
	} {
		c, err := Parse(strings.NewReader(strings.Replace(good, "stream: COMET", "stream: COMET\n"+tc.lines, 1)))
		if err != nil {
			t.Errorf("%q: %v", tc.lines, err)
			continue
		}
		if c.NATS.MaxAge != tc.age || c.NATS.MaxBytesValue() != tc.bytes {
			t.Errorf("%q: max_age %s, max_bytes %d; want %s, %d", tc.lines, c.NATS.MaxAge, c.NATS.MaxBytesValue(), tc.age, tc.bytes)
		}
	}
	for _, tc := range []struct{ name, lines, says string }{
		{"negative age", "  max_age: -1h", "nats.max_age: -1h0m0s must not be negative"},
		{"age below the duplicate window", "  max_age: 10s", "nats.max_age: 10s is shorter than nats.duplicate_window (30s)"},
		{"age without unit", "  max_age: 3600", "nats.max_age (line 5): must be a duration"},
		{"size without a number", "  max_bytes: lots", `nats.max_bytes: "lots" is not a size`},
		{"tiny size", "  max_bytes: 1KiB", "nats.max_bytes: 1KiB is below 1MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(strings.Replace(good, "stream: COMET", "stream: COMET\n"+tc.lines, 1)))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want ErrInvalid saying %q", err, tc.says)
			}
		})
	}
}

// TestListenSet tells an explicit nats.listen from the default, which
// decides whether $NATS_URL may replace the embedded server.
func TestListenSet(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       bool
	}{
		{"default", good, false},
		{"written", strings.Replace(good, "stream: COMET", "stream: COMET\n  listen: 127.0.0.1:4333", 1), true},
		{"written as the default", strings.Replace(good, "stream: COMET", "stream: COMET\n  listen: "+DefaultListen, 1), true},
		{"another field", strings.Replace(good, "stream: COMET", "stream: COMET\n  monitor: 127.0.0.1:8222", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ListenSet(); got != tc.want {
				t.Errorf("ListenSet() = %v, want %v", got, tc.want)
			}
		})
	}
}
