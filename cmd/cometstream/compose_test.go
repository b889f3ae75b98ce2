package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
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

// loadCompose loads docker-compose.yml as docker compose would.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
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
	return project
}

// TestComposeFile loads docker-compose.yml with the compose specification's
// own loader (this machine has no Docker engine) and checks that every file
// it references exists and parses as what it is, every command is one of
// ours, no host port is published twice, and that the topology is safe to
// start (TestComposeFile/safe).
func TestComposeFile(t *testing.T) {
	project := loadCompose(t)
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
	ours := cometstreamImage(project)
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
		}
		if ours != "" && svc.Image == ours {
			if len(svc.Command) == 0 || !known[svc.Command[0]] {
				t.Errorf("%s runs %v, not a cometstream command", name, svc.Command)
			}
			if len(svc.Command) > 0 && svc.Command[0] == "produce" {
				producers++
			}
		}
	}
	if producers != 2 {
		t.Errorf("%d producers, want two for high availability", producers)
	}
	t.Run("safe", func(t *testing.T) { checkComposeSafe(t, project) })
}

// cometstreamImage is the image the service that builds this repository
// tags ("" when none builds it).
func cometstreamImage(project *types.Project) string {
	for _, svc := range project.Services {
		if svc.Build != nil {
			return svc.Image
		}
	}
	return ""
}

// composeDeps is what each service needs running before it starts.
var composeDeps = map[string][]string{
	"producer-1":    {"nats-1", "nats-2", "nats-3", "simulator"},
	"producer-2":    {"nats-1", "nats-2", "nats-3", "simulator"},
	"sink-postgres": {"nats-1", "nats-2", "nats-3", "postgres"},
	"webhook":       {"nats-1", "nats-2", "nats-3", "simulator"},
}

// binaryPath is where the Dockerfile puts the binary; health checks run it
// (the image has no shell).
const binaryPath = "/usr/local/bin/cometstream"

// checkComposeSafe: `docker compose up` publishes nothing beyond the host's
// loopback (demo passwords, NATS monitoring and the operations endpoints
// ask nobody for credentials), every service says when it is healthy and
// starts only once what it needs is, the image is built once, and the
// build context leaves out what is not source.
func checkComposeSafe(t *testing.T, project *types.Project) {
	t.Setenv("SERVER_NAME", "nats-1")
	for _, v := range []string{"NATS_PRODUCER_PASSWORD", "NATS_SINK_PASSWORD", "NATS_ADMIN_PASSWORD"} {
		t.Setenv(v, "x")
	}
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), " "+binaryPath+"\n") {
		t.Errorf("the Dockerfile does not install the binary as %s, where the health checks run it", binaryPath)
	}
	var builders []string
	ours := cometstreamImage(project)
	for _, name := range project.ServiceNames() {
		svc := project.Services[name]
		if svc.NetworkMode == "host" {
			t.Errorf("%s uses the host's network: its ports bypass the loopback binding", name)
		}
		for _, p := range svc.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes port %d on %q: bind it to 127.0.0.1 (%q)", name, p.Target, p.HostIP, "127.0.0.1:"+p.Published+":"+fmt.Sprint(p.Target))
			}
		}
		if svc.Build != nil {
			builders = append(builders, name)
		} else if svc.Image == ours && svc.PullPolicy != types.PullPolicyNever {
			t.Errorf("%s runs %s, which another service builds, with pull_policy %q: never, or compose tries to pull it", name, ours, svc.PullPolicy)
		}
		for dep, d := range svc.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
		}
		for _, dep := range composeDeps[name] {
			if _, ok := svc.DependsOn[dep]; !ok {
				t.Errorf("%s does not wait for %s", name, dep)
			}
		}
		hc := svc.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Errorf("%s has no health check in exec form (CMD …): %+v", name, hc)
			continue
		}
		switch {
		case svc.Image == ours:
			checkCometstreamHealth(t, name, svc)
		case strings.HasPrefix(svc.Image, "nats:"):
			// The image is alpine's: busybox wget, no curl. JetStream
			// enabled is what a node can say before its peers are up.
			opts, err := server.ProcessConfigFile(composeMount(t, svc, "/etc/nats/nats.conf"))
			if err != nil {
				t.Fatal(err)
			}
			probe := fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", opts.HTTPPort)
			if hc.Test[1] != "wget" || !slices.Contains(hc.Test, probe) {
				t.Errorf("%s's health check %v does not wget %s", name, hc.Test, probe)
			}
		case strings.HasPrefix(svc.Image, "postgres:"):
			if hc.Test[1] != "pg_isready" {
				t.Errorf("%s's health check %v is not pg_isready", name, hc.Test)
			}
		default:
			t.Errorf("%s runs %s: which health check fits it?", name, svc.Image)
		}
	}
	if len(builders) != 1 {
		t.Errorf("services %v build the image: one should, the others run its image", builders)
	}
	checkDockerignore(t)
}

// checkCometstreamHealth: the service's health check runs `cometstream
// health` against the port the service itself serves on.
func checkCometstreamHealth(t *testing.T, name string, svc types.ServiceConfig) {
	t.Helper()
	test := svc.HealthCheck.Test
	if len(test) < 3 || test[1] != binaryPath || test[2] != "health" {
		t.Errorf("%s's health check %v is not %s health", name, test, binaryPath)
		return
	}
	probe, err := parseHealth(test[3:])
	if err != nil {
		t.Errorf("%s's health check %v: %v", name, test, err)
		return
	}
	listen := ""
	for i, arg := range svc.Command {
		if (arg == "--http" || arg == "--listen") && i+1 < len(svc.Command) {
			listen = svc.Command[i+1]
		}
		if arg == "--pprof" {
			t.Errorf("%s serves Go's profiles", name)
		}
	}
	if svc.Command[0] == "produce" {
		cfg, err := config.Load(composeMount(t, svc, svc.Command[slices.Index(svc.Command, "--config")+1]))
		if err != nil {
			t.Fatal(err)
		}
		listen = cfg.HTTP.Listen
		if cfg.HTTP.Pprof {
			t.Errorf("%s serves Go's profiles", name)
		}
	}
	_, port, _ := strings.Cut(listen, ":")
	if probe.url.Hostname() != "127.0.0.1" || probe.url.Port() != port || port == "" {
		t.Errorf("%s serves on %q; its health check asks %s", name, listen, probe.url)
	}
}

// composeMount is the host file mounted at target in svc.
func composeMount(t *testing.T, svc types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	t.Fatalf("%s mounts nothing at %s", svc.Name, target)
	return ""
}

// checkDockerignore: the build context leaves out the repository's
// history, binaries, databases, data directories and test output, and
// keeps what the build needs.
func checkDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := dockerignore(string(data))
	for _, path := range []string{
		".git/HEAD", ".env", "cometstream", "bin/cometstream", "data/nats/jetstream/x", "comet.db", "comet.db-wal",
		"docs/x/sink.db", "cometstream-demo/cometstream.db", ".ci/asyncapi/node_modules/ajv/package.json",
		"cmd/cometstream/cometstream.test", "cover.out",
	} {
		if !ignored(path) {
			t.Errorf(".dockerignore lets %s into the build context", path)
		}
	}
	for _, path := range []string{
		"go.mod", "go.sum", "cmd/cometstream/main.go", "internal/opshttp/ops.go", "docs/schemas/v1/row.json", "docs/asyncapi.yaml",
	} {
		if ignored(path) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", path)
		}
	}
}

// dockerignore returns whether a path (slash-separated, relative to the
// context) is left out, as docker reads the file: patterns anchored at the
// context's root, * and ? within one path element, ** across elements, !
// to take a path back, the last matching line deciding, and a directory
// that matches taking everything under it.
func dockerignore(content string) func(path string) bool {
	type rule struct {
		re  *regexp.Regexp
		not bool
	}
	var rules []rule
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		not := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/")
		line = strings.TrimSuffix(filepath.ToSlash(filepath.Clean(line)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		rules = append(rules, rule{regexp.MustCompile(re.String()), not})
	}
	return func(path string) bool {
		ignored := false
		for _, r := range rules {
			elems := strings.Split(path, "/")
			for n := 1; n <= len(elems); n++ {
				if r.re.MatchString(strings.Join(elems[:n], "/")) {
					ignored = !r.not
					break
				}
			}
		}
		return ignored
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
