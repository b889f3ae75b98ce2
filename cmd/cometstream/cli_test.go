package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometstream/cometstream/internal/simulator"
	"github.com/cometstream/cometstream/internal/testenv"
)

const minimalConfig = `data_dir: %s
nats:
  listen: %s
http:
  listen: ""
sources:
  - name: faw
    base_url: %s
    reports:
      - name: players
        api_key_env: TEST_PLAYERS_KEY
        key: [personId]
`

func TestExitStatus(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, "good.yaml", fmt.Sprintf(minimalConfig, dir, "127.0.0.1:0", "http://127.0.0.1:1"))
	checkExits(t, []exitCase{
		{"no command", nil, nil, 2, "no command"},
		{"unknown command", nil, []string{"explode"}, 2, `unknown command "explode"`},
		{"help", nil, []string{"help"}, 0, "usage: cometstream"},
		{"missing config flag", nil, []string{"produce"}, 2, "--config is required"},
		{"bad flag", nil, []string{"simulate", "--error-rate", "2"}, 2, "--error-rate"},
		{"unknown field", nil, []string{"produce", "--config", writeFile(t, "x.yaml", "sourcez: []\n")}, 2, "sourcez"},
		{"missing key env", nil, []string{"produce", "--config", good}, 2, good + ": invalid configuration: sources[0].reports[0].api_key_env: environment variable TEST_PLAYERS_KEY is not set"},
		{"inspect missing key env", nil, []string{"inspect", "--config", good, "--report", "players"}, 2, good + ": invalid configuration: sources[0].reports[0].api_key_env: environment variable TEST_PLAYERS_KEY is not set"},
		{"missing embedded password env", []string{"TEST_PLAYERS_KEY=k"}, []string{"produce", "--config", writeFile(t, "u.yaml", strings.Replace(fmt.Sprintf(minimalConfig, dir, "127.0.0.1:0", "http://127.0.0.1:1"), "nats:\n", "nats:\n  embedded:\n    users: [{name: app, role: admin, password_env: TEST_NO_SUCH_PASSWORD}]\n", 1))}, 2,
			"u.yaml: invalid configuration: nats.embedded.users[0].password_env: environment variable TEST_NO_SUCH_PASSWORD is not set"},
		{"unsafe listen", []string{"TEST_PLAYERS_KEY=k"}, []string{"produce", "--config", writeFile(t, "l.yaml", fmt.Sprintf(minimalConfig, dir, "0.0.0.0:0", "http://127.0.0.1:1"))}, 2, "refusing to listen on a non-loopback address without authentication"},
		{"no such file", nil, []string{"produce", "--config", filepath.Join(dir, "nope.yaml")}, 2, "nope.yaml"},
		{"status without nats", []string{"NATS_URL="}, []string{"status"}, 2, "no NATS URL"},
		{"inspect unknown report", []string{"TEST_PLAYERS_KEY=k"}, []string{"inspect", "--config", good, "--report", "nobody"}, 2, `no report "nobody"`},
		{"sink help", nil, []string{"sink", "--help"}, 0, "usage: cometstream sink sqlite|postgres|webhook"},
		{"sink -h", nil, []string{"sink", "-h"}, 0, "usage: cometstream sink sqlite|postgres|webhook"},
		{"verify help", nil, []string{"verify", "--help"}, 0, "usage: cometstream verify sqlite|postgres"},
		{"unknown sink", nil, []string{"sink", "mysql"}, 2, `unknown sink "mysql"`},
		{"unexpected argument", []string{"NATS_URL="}, []string{"tail", "extra"}, 2, `cometstream: tail: unexpected argument "extra"`},
	})
}

func TestInspect(t *testing.T) {
	sim, base := testenv.StartSim(t, simulator.Config{Seed: 5, Reports: []simulator.ReportSpec{
		{Name: "players", Kind: "persons", Rows: 40},
		{Name: "games", Kind: "matches", Rows: 60},
		{Name: "goals", Kind: "events", Rows: 60},
	}})
	env := []string{"TEST_PLAYERS_KEY=" + sim.Key("players"), "TEST_GAMES_KEY=" + sim.Key("games"), "TEST_GOALS_KEY=" + sim.Key("goals")}
	cfg := writeFile(t, "c.yaml", fmt.Sprintf(minimalConfig, t.TempDir(), "127.0.0.1:0", base))
	status, out := runBin(t, env, "inspect", "--config", cfg, "--report", "players", "--rows", "2")
	if status != 0 {
		t.Fatalf("exit %d:\n%s", status, out)
	}
	for _, want := range []string{"40 rows in 1 pages", "personId", "dateOfBirth", "DATE", "key candidates", "suggested key: [personId]", "configured key: [personId]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, sim.Key("players")) {
		t.Error("inspect printed the API key")
	}

	// Before a key is chosen: the configuration that produce refuses.
	draft := writeFile(t, "draft.yaml", fmt.Sprintf(`data_dir: %s
http: {listen: ""}
sources:
  - name: faw
    base_url: %s
    reports:
      - {name: players, api_key_env: TEST_PLAYERS_KEY, page_size: 10}
      - {name: games, api_key_env: TEST_GAMES_KEY, page_size: 10}
      - {name: goals, api_key_env: TEST_GOALS_KEY, page_size: 10}
`, t.TempDir(), base))
	if status, out := runBin(t, env, "produce", "--config", draft); status != 2 || !strings.Contains(out, "cometstream inspect") {
		t.Fatalf("produce without a key: exit %d\n%s", status, out)
	}
	for report, want := range map[string]string{
		"players": "suggested key: [personId]",
		// kickoff is unique too, but an identifier pair ranks above a timestamp.
		"games": "suggested key: [competitionId, matchNo]",
		"goals": `only key: ["*"] fits`,
	} {
		status, out := runBin(t, env, "inspect", "--config", draft, "--report", report)
		if status != 0 || !strings.Contains(out, want) || !strings.Contains(out, "configured key: none yet") {
			t.Errorf("inspect %s without a key: exit %d, want %q:\n%s", report, status, want, out)
		}
	}

	// A key repeated on a page past the first is found when every page is
	// checked, with an example.
	if err := sim.SetShapes("players", simulator.Shapes{RepeatKeys: 1}); err != nil {
		t.Fatal(err)
	}
	dup := sim.RepeatedKeys("players")[0]
	status, out = runBin(t, env, "inspect", "--config", draft, "--report", "players", "--pages", "0")
	if status != 0 || !strings.Contains(out, "checked all 41 rows") || !strings.Contains(out, "nearly unique, but repeats: [personId]: 1 values on 2 rows, e.g. "+dup) {
		t.Errorf("repeated key: exit %d\n%s", status, out)
	}

	sim.Revoke("players", 410)
	status, out = runBin(t, env, "inspect", "--config", cfg, "--report", "players")
	if status != 1 || !strings.Contains(out, "report unavailable (HTTP 410)") || strings.Contains(out, sim.Key("players")) {
		t.Errorf("revoked report: exit %d\n%s", status, out)
	}
}

// TestHelpOnStdout: help asked for is the command's result, on standard
// output, with nothing on standard error; a usage error's help goes to
// standard error.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"--help"}, {"-h"}, {"produce", "--help"}, {"sink", "--help"}, {"sink", "sqlite", "--help"},
		{"sink", "webhook", "--help"}, {"verify", "--help"}, {"key", "--help"}, {"health", "-h"}, {"status", "--help"},
	} {
		cmd := exec.Command(testenv.Binary(t), args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || !strings.Contains(strings.ToLower(stdout.String()), "usage") || stderr.Len() != 0 {
			t.Errorf("%q: %v, stdout %d bytes, stderr %q", args, err, stdout.Len(), stderr.String())
		}
	}
	cmd := exec.Command(testenv.Binary(t), "produce", "--no-such-flag")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil || stdout.Len() != 0 || !strings.Contains(stderr.String(), "no-such-flag") {
		t.Errorf("a usage error: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
