package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// versionLine is what `cometstream version` prints: the module version,
// then the commit ("unknown" when the build recorded none, as with
// -buildvcs=false) and the toolchain.
var versionLine = regexp.MustCompile(`^cometstream (\(devel\)|v\d+\.\d+\.\d+\S*) \(commit ([0-9a-f]{40}(-dirty)?|unknown), (go\S+)\)\n$`)

// TestVersion runs the binary testenv.Binary builds (runBin).
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		status, out := runBin(t, nil, args...)
		m := versionLine.FindStringSubmatch(out)
		if status != 0 || m == nil {
			t.Errorf("%v: exit %d, want 0 and a line matching %s:\n%s", args, status, versionLine, out)
			continue
		}
		if m[4] != runtime.Version() {
			t.Errorf("%v: toolchain %s, want %s (the one that built it)", args, m[4], runtime.Version())
		}
	}
	if status, out := runBin(t, nil, "version", "--short"); status != 2 || !strings.Contains(out, "-short") {
		t.Errorf("version --short: exit %d, want 2 naming the flag:\n%s", status, out)
	}
}

// TestVersionRecordsCommit builds from this checkout with VCS stamping on
// (testenv.Binary's build follows GOFLAGS, which may turn it off) and
// expects the checkout's commit.
func TestVersionRecordsCommit(t *testing.T) {
	root := repoRoot()
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout, or no git: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "cometstream")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/cometstream")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := versionLine.FindStringSubmatch(string(out))
	if m == nil || strings.TrimSuffix(m[2], "-dirty") != strings.TrimSpace(string(head)) {
		t.Errorf("a VCS build prints %q, want the commit %s", out, head)
	}
}
