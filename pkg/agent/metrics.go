package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Stage names used in metrics and timings.
const (
	stageCheckpoint = "checkpoint" // the kubelet call
	stageImage      = "image"      // build and push
	stageVerify     = "verify"     // read back by digest
)

var (
	stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stateshift_agent_stage_duration_seconds",
		Help:    "Duration of each stage of a container checkpoint (checkpoint, image, verify), by builder.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"stage", "builder"})
	archiveBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_archive_bytes_total",
		Help: "Bytes of checkpoint archives turned into pushed and verified images, by builder.",
	}, []string{"builder"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_failures_total",
		Help: "Failed checkpoint attempts, by reason.",
	}, []string{"reason"})
	checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_checkpoints_total",
		Help: "Checkpoints finished, by phase (Succeeded or Failed).",
	}, []string{"phase"})
)

func init() {
	metrics.Registry.MustRegister(stageDuration, archiveBytes, failures, checkpoints)
}
