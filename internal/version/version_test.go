package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuild(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	bare := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		name          string
		bi            *debug.BuildInfo
		ok            bool
		linked        string
		version, want string
	}{
		{"no build information", nil, false, "", "(devel)", "unknown"},
		{"no build information, a commit given at link time", nil, false, "def456", "(devel)", "def456"},
		{"VCS information, the tree modified", vcs, true, "", "v1.2.0", "abc123-dirty"},
		{"the toolchain's record wins over the linked commit", vcs, true, "def456", "v1.2.0", "abc123-dirty"},
		{"a build without VCS (the Docker image), the linked commit", bare, true, "def456", "(devel)", "def456"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuild(tc.bi, tc.ok, tc.linked)
			if got.Version != tc.version || got.Commit != tc.want {
				t.Errorf("fromBuild = %+v, want version %q commit %q", got, tc.version, tc.want)
			}
		})
	}
}
