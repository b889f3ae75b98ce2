package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestKeyFlagsAfterValues: a flag after the values is a flag, not a
// value; after "--" everything is a value.
func TestKeyFlagsAfterValues(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		token string
	}{
		{[]string{"--report", "fees", "FEE 2026/000000 A", "--quiet"}, "=" + base64.RawURLEncoding.EncodeToString([]byte("FEE 2026/000000 A"))},
		{[]string{"9001", "--report", "events", "45", "--quiet"}, "9001/45"},
		{[]string{"--report", "fees", "--quiet", "--", "--quiet"}, "--quiet"},
	} {
		status, out := runBin(t, nil, append([]string{"key"}, tc.args...)...)
		if got := strings.TrimSuffix(out, "\n"); status != 0 || got != tc.token {
			t.Errorf("key %q: exit %d, printed %q, want only %q", tc.args, status, out, tc.token)
		}
	}
}

// TestKeyRoundTrips encodes key values as the producer writes tokens and
// decodes them back, through the binary, for values that need encoding
// and composite keys; the subject and bucket forms are printed alongside.
func TestKeyRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		token  string // "" when only the round trip is checked
	}{
		{"number", []string{"191579"}, "191579"},
		{"date", []string{"2002-07-24"}, "2002-07-24"},
		{"dots", []string{"a.b.c"}, "=" + base64.RawURLEncoding.EncodeToString([]byte("a.b.c"))},
		{"spaces", []string{"Rushesha Banda"}, ""},
		{"unicode", []string{"José Ñandú 北京"}, "=" + base64.RawURLEncoding.EncodeToString([]byte("José Ñandú 北京"))},
		{"wildcards", []string{"*", ">", "a*b>c"}, ""},
		{"empty string", []string{""}, "="},
		{"composite", []string{"9001", "191579", "45"}, "9001/191579/45"},
		{"composite with an empty part", []string{"9001", "", "x y"}, ""},
		{"dash first", []string{"-5"}, "-5"},
		{"datetime", []string{"2026-03-01T12:00:00.000Z"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"key", "--report", "events", "--quiet", "--"}, tc.values...)
			status, out := runBin(t, nil, args...)
			token := strings.TrimSuffix(out, "\n")
			if status != 0 || strings.Contains(token, "\n") {
				t.Fatalf("key %q: exit %d\n%s", tc.values, status, out)
			}
			if tc.token != "" && token != tc.token {
				t.Errorf("key %q = %q, want %q", tc.values, token, tc.token)
			}
			if strings.ContainsAny(token, ".*> \t") {
				t.Errorf("token %q of %q cannot be one subject token", token, tc.values)
			}
			status, out = runBin(t, nil, "key", "--decode", token, "--quiet")
			if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); status != 0 || !equalStrings(got, tc.values) {
				t.Errorf("decode %q: exit %d, values %q, want %q", token, status, got, tc.values)
			}
			// The readable forms: every value quoted, and where the row is.
			status, out = runBin(t, nil, "key", "--decode", token, "--report", "events")
			for i, v := range tc.values {
				if want := fmt.Sprintf("value %-6d %s\n", i+1, strconv.Quote(v)); status != 0 || !strings.Contains(out, want) {
					t.Errorf("decode %q lacks %q:\n%s", token, want, out)
				}
			}
			for _, want := range []string{"subject      comet.events.row.*." + token + "\n", "bucket key   comet_events " + token + "\n", "nats kv get --raw comet_events "} {
				if !strings.Contains(out, want) {
					t.Errorf("decode %q lacks %q:\n%s", token, want, out)
				}
			}
		})
	}

	// A row subject decodes too, and the configuration names the columns.
	cfg := writeFile(t, "c.yaml", fmt.Sprintf(minimalConfig, t.TempDir(), "127.0.0.1:0", "http://127.0.0.1:1")+
		"      - {name: goals, api_key_env: K, key: [matchId, personId]}\n      - {name: events, api_key_env: K, key: [\"*\"]}\n")
	status, out := runBin(t, nil, "key", "--config", cfg, "--decode", "comet.goals.row.updated.9001/=QiBD")
	if status != 0 || !strings.Contains(out, `matchId      "9001"`) || !strings.Contains(out, `personId     "B C"`) || !strings.Contains(out, "bucket key   comet_goals 9001/=QiBD") {
		t.Errorf("decode a subject with --config: exit %d\n%s", status, out)
	}
	if status, out := runBin(t, nil, "key", "--config", cfg, "--report", "goals", "9001", "B C"); status != 0 || !strings.Contains(out, "token        9001/=QiBD\n") {
		t.Errorf("encode with --config: exit %d\n%s", status, out)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestKeyUsage: every misuse of key exits 2 and says what is wrong.
func TestKeyUsage(t *testing.T) {
	cfg := writeFile(t, "c.yaml", fmt.Sprintf(minimalConfig, t.TempDir(), "127.0.0.1:0", "http://127.0.0.1:1")+
		"      - {name: goals, api_key_env: K, key: [matchId, personId]}\n      - {name: events, api_key_env: K, key: [\"*\"]}\n")
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"nothing", []string{"key"}, "--report is required (or --decode TOKEN)"},
		{"no values", []string{"key", "--report", "players"}, "give the key values of a row of players"},
		{"bad report name", []string{"key", "--report", "Players!", "1"}, `--report: "Players!" is not a report name`},
		{"too few values", []string{"key", "--config", cfg, "--report", "goals", "9001"}, "goals is keyed by 2 columns (matchId, personId), not 1 values"},
		{"too many values", []string{"key", "--config", cfg, "--report", "players", "1", "2"}, "players is keyed by 1 columns (personId), not 2 values"},
		{"unknown report", []string{"key", "--config", cfg, "--report", "nobody", "1"}, `--report: no report "nobody"`},
		{"content key", []string{"key", "--config", cfg, "--report", "events", "1"}, "events is keyed by content"},
		{"config without report", []string{"key", "--config", cfg, "--decode", "1"}, "give --report too"},
		{"bad token", []string{"key", "--decode", "=!!"}, `--decode: "=!!" is not a row key token`},
		{"not plain", []string{"key", "--decode", "a b"}, `--decode: "a b" is not a row key token`},
		{"report subject", []string{"key", "--decode", "comet.goals.report.synced"}, "neither a token nor a row subject"},
		{"token of another report", []string{"key", "--decode", "comet.goals.row.created.1", "--report", "players"}, "is of report goals, not players"},
		{"decode with values", []string{"key", "--decode", "1", "2"}, "--decode takes one token"},
		{"wrong count to decode", []string{"key", "--config", cfg, "--report", "goals", "--decode", "1"}, "goals is keyed by 2 columns (matchId, personId), the token has 1 values"},
		{"a flag for a value", []string{"key", "--report", "players", "-5"}, "flag provided but not defined: -5"},
		{"too long", []string{"key", "--report", "players", strings.Repeat("é", 600)}, "longer than 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := runBin(t, nil, tc.args...)
			if status != 2 || !strings.Contains(out, tc.says) {
				t.Errorf("exit %d, want 2; output should say %q:\n%s", status, tc.says, out)
			}
		})
	}
	if status, out := runBin(t, nil, "key", "--help"); status != 0 || !strings.Contains(out, "usage: cometstream key --report NAME") {
		t.Errorf("key --help: exit %d\n%s", status, out)
	}
}
