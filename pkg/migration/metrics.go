package migration

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/version"
)

var (
	migrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_migrations_total",
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
	strayImagesDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "stray_images_total",
		Help: "Stray images (pushed by failed checkpoint attempts) handled by retention: deleted, refused (origin check, or a result), error (registry).",
	}, []string{"outcome"})
	checkpointDeferrals = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "checkpoint_deferrals_total",
		Help: "Scheduled checkpoints due that a round did not take because Migrations were in progress (--scheduled-checkpoint-deferral); one deferred over several rounds counts once per round.",
	})
	checkpointDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "controller", Name: "checkpoint_deliveries_total",
		Help: "With --checkpoint-delivery=proxy, the checkpointdelivery controller's writes: create and delete of members' copies, status of the records; result ok or error.",
	}, []string{"operation", "result"})
	deadlinesExceeded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift", Subsystem: "migration", Name: "deadline_exceeded_total",
		Help: "Migration phases that outlived spec.phaseTimeout, by trigger and phase.",
	}, []string{"trigger", "phase"})
)

// migrationOutcomes are the values of stateshift_migrations_total's outcome.
var migrationOutcomes = []string{"Restored", "FellBack", "Failed"}

func init() {
	// Every outcome of every trigger starts at 0, so that increase() sees
	// the first FellBack (a series born at 1 has no increase).
	for _, t := range []v1alpha1.MigrationTrigger{v1alpha1.TriggerManual, v1alpha1.TriggerCordon, v1alpha1.TriggerFailover,
		v1alpha1.TriggerRebalance, v1alpha1.TriggerEviction, v1alpha1.TriggerPlacementChange} {
		for _, o := range migrationOutcomes {
			migrations.WithLabelValues(string(t), o)
		}
	}
	for _, r := range []string{"ok", "error"} {
		checkpointsPruned.WithLabelValues(r)
	}
	for _, o := range []string{"deleted", "refused", "error"} {
		strayImagesDeleted.WithLabelValues(o)
	}
	for _, op := range []string{"create", "delete", "status"} {
		for _, r := range []string{"ok", "error"} {
			checkpointDeliveries.WithLabelValues(op, r)
		}
	}
	metrics.Registry.MustRegister(migrations, phaseSeconds, checkpointsCreated, checkpointsPruned, strayImagesDeleted, deadlinesExceeded, checkpointDeferrals, checkpointDeliveries,
		observedState, version.BuildInfo("interpreter-webhook"))
}

// countDelivery counts one write of the checkpointdelivery controller and
// returns its error.
func countDelivery(operation string, err error) error {
	checkpointDeliveries.WithLabelValues(operation, map[bool]string{true: "ok", false: "error"}[err == nil]).Inc()
	return err
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
