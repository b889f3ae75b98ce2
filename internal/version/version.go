package version

import (
	"runtime"
	"runtime/debug"
)

// Info is what a build records of itself.
type Info struct {
	// Version is the module version; "(devel)" for a build from a checkout.
	Version string
	// Commit is the VCS revision, with "-dirty" when the tree had changes;
	// "unknown" when the build recorded none (go run, a test binary) and
	// none was given at link time.
	Commit string
	// Go is the toolchain version.
	Go string
}

// commit is the revision a build without VCS information was told it
// comes from (the Docker image, built without .git):
//
//	go build -ldflags "-X github.com/cometstream/cometstream/internal/version.commit=$(git rev-parse HEAD)"
var commit string

// Get returns this build's Info.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuild(bi, ok, commit)
}

// fromBuild is Get's reading of the build information, and of the commit
// given at link time, which the toolchain's own record wins over.
func fromBuild(bi *debug.BuildInfo, ok bool, linked string) Info {
	info := Info{Version: "(devel)", Commit: "unknown", Go: runtime.Version()}
	if linked != "" {
		info.Commit = linked
	}
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		info.Commit = rev
		if dirty {
			info.Commit += "-dirty"
		}
	}
	return info
}

// String renders the Info as `cometstream version` prints it.
func (i Info) String() string {
	return "cometstream " + i.Version + " (commit " + i.Commit + ", " + i.Go + ")"
}
