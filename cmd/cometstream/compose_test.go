package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/cometstream/cometstream/consumer/webhook"
	"github.com/cometstream/cometstream/internal/config"
	"github.com/cometstream/cometstream/internal/simulator"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestComposeFile loads docker-compose.yml with the compose specification's
// own loader (this machine has no Docker engine) and checks that every file
// it references exists and parses as what it is, every command is one of
// ours, and no host port is published twice.
func TestComposeFile(t *testing.T) {
	root := repoRoot()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithOsEnv, cli.WithResolvedPaths(true), cli.WithName("cometstream"))
	if err != nil {
		t.Fatal(err)
	}
	project, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("the compose file does not load: %v", err)
	}
	want := []string{"nats-1", "nats-2", "nats-3", "simulator", "producer-1", "producer-2", "postgres", "sink-postgres", "webhook"}
	for _, name := range want {
		if _, ok := project.Services[name]; !ok {
			t.Errorf("service %s is missing", name)
		}
	}
	known := map[string]bool{}
	for _, c := range commands() {
		known[c.name] = true
	}
	hostPorts := map[string]string{}
	producers := 0
	for name, svc := range project.Services {
		if img, ok := strings.CutPrefix(svc.Image, "nats:"); ok {
			// ha fences producers with atomic batch publish: nats-server 2.12+.
			var major, minor int
			if _, err := fmt.Sscanf(img, "%d.%d", &major, &minor); err != nil || major < 2 || (major == 2 && minor < 12) {
				t.Errorf("%s runs %s: ha needs nats-server 2.12 or newer", name, svc.Image)
			}
		}
		for _, dep := range svc.GetDependencies() {
			if _, ok := project.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which does not exist", name, dep)
			}
		}
		for _, p := range svc.Ports {
			if other, dup := hostPorts[p.Published]; dup {
				t.Errorf("host port %s is published by %s and %s", p.Published, name, other)
			}
			hostPorts[p.Published] = name
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, v.Source, err)
				}
			}
		}
		for _, f := range svc.EnvFiles {
			if _, err := os.Stat(f.Path); err != nil {
				t.Errorf("%s reads %s: %v", name, f.Path, err)
			}
		}
		if svc.Build != nil {
			if _, err := os.Stat(filepath.Join(svc.Build.Context, "Dockerfile")); err != nil {
				t.Errorf("%s builds without a Dockerfile: %v", name, err)
			}
			if len(svc.Command) == 0 || !known[svc.Command[0]] {
				t.Errorf("%s runs %v, not a cometstream command", name, svc.Command)
			}
			if svc.Command[0] == "produce" {
				producers++
			}
		}
	}
	if producers != 2 {
		t.Errorf("%d producers, want two for high availability", producers)
	}
}

// TestComposeConfigs parses the files the compose topology mounts, as the
// programs that read them would.
func TestComposeConfigs(t *testing.T) {
	dir := filepath.Join(repoRoot(), "docs", "compose")
	env := readEnv(t, filepath.Join(dir, "simulator.env"))
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("NATS_PRODUCER_PASSWORD", "p")
	t.Setenv("NATS_SINK_PASSWORD", "s")
	t.Setenv("NATS_ADMIN_PASSWORD", "a")
	t.Setenv("SERVER_NAME", "nats-1")
	t.Setenv("WEBHOOK_SECRETS", "whsec_ZGVtby13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5")

	cfg, err := config.Load(filepath.Join(dir, "producer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Replicas != 3 || cfg.HA.LeaseTTL == 0 {
		t.Errorf("the compose producers must run with replicas 3 and leases: %+v %+v", cfg.NATS, cfg.HA)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := producerReports(cfg, log); err != nil {
		t.Errorf("producer keys: %v", err)
	}
	if _, err := webhook.Load(filepath.Join(dir, "webhooks.yaml"), log); err != nil {
		t.Error(err)
	}
	for _, conf := range []string{filepath.Join(dir, "nats.conf"), filepath.Join(repoRoot(), "docs", "nats-server.conf")} {
		if _, err := server.ProcessConfigFile(conf); err != nil {
			t.Errorf("%s: %v", conf, err)
		}
	}
	// The demo keys are the simulator's, from its default seed.
	sim, _ := simulator.New(simulator.Config{Seed: 1})
	for _, r := range sim.Reports() {
		if got := env["COMET_"+strings.ToUpper(r.Name)+"_KEY"]; got != r.APIKey {
			t.Errorf("simulator.env has %q for %s, the simulator serves %q", got, r.Name, r.APIKey)
		}
	}
	if !slices.Contains([]string{"persons", "matches", "fees"}, cfg.Sources[0].Reports[0].Name) {
		t.Errorf("unexpected report %s", cfg.Sources[0].Reports[0].Name)
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}
