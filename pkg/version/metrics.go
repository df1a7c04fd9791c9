package version

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is the gauge stateshift_build_info{binary,version,goversion},
// always 1: dashboards and alerts join on it to tell which build runs
// where (a half-finished rollout shows two versions).
func BuildInfo(binary string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stateshift_build_info",
		Help: "Always 1; the labels say which stateshift binary, version and Go runtime this process is.",
		ConstLabels: prometheus.Labels{
			"binary": binary, "version": Version, "goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
