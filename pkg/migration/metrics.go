package migration

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	migrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "migration", Name: "total",
		Help: "Migrations that finished, by trigger and outcome (Restored, FellBack, Failed).",
	}, []string{"trigger", "outcome"})
	phaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "stateshift", Subsystem: "migration", Name: "phase_duration_seconds",
		Help:    "Duration of migration phases: checkpoint (start to armed), restore (armed to restored), total.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
	}, []string{"trigger", "phase"})
	checkpointsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "checkpoints_created_total",
		Help: "Checkpoints created by the controller, by reason (schedule, migration).",
	}, []string{"reason"})
	checkpointsPruned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "checkpoints_pruned_total",
		Help: "Checkpoints deleted by retention, and whether their registry manifests were deleted (ok, error).",
	}, []string{"registry"})
	deadlinesExceeded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "migration", Name: "deadline_exceeded_total",
		Help: "Migration phases that outlived spec.phaseTimeout, by trigger and phase.",
	}, []string{"trigger", "phase"})
	armedWorkloads = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "armed_workloads",
		Help: "Protected workloads whose restore is armed, per CheckpointPolicy.",
	}, []string{"namespace", "policy"})
)

func init() {
	metrics.Registry.MustRegister(migrations, phaseSeconds, checkpointsCreated, checkpointsPruned, deadlinesExceeded, armedWorkloads)
}

// observeFinished records a finished Migration's outcome and durations.
func observeFinished(trigger, outcome string, checkpoint, restore, total float64) {
	migrations.WithLabelValues(trigger, outcome).Inc()
	if checkpoint > 0 {
		phaseSeconds.WithLabelValues(trigger, "checkpoint").Observe(checkpoint)
	}
	if restore > 0 {
		phaseSeconds.WithLabelValues(trigger, "restore").Observe(restore)
	}
	phaseSeconds.WithLabelValues(trigger, "total").Observe(total)
}
