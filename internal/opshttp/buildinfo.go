package opshttp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cometstream/cometstream/internal/version"
)

// RegisterBuildInfo registers cometstream_build_info{version,commit,goversion},
// always 1, from internal/version: which build answers, for dashboards and
// for `group by (version)` across instances. Registering it twice on one
// registry is no error; any other registration failure panics, as
// MustRegister does.
func RegisterBuildInfo(reg prometheus.Registerer) {
	info := version.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cometstream_build_info",
		Help:        "Always 1; its labels say which build of cometstream runs: the module version, the VCS commit and the Go toolchain.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit, "goversion": info.Go},
	})
	g.Set(1)
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(g); err != nil && !errors.As(err, &are) {
		panic(err)
	}
}
