package migration

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// start records the sources and begins the move.
func (r MigrationReconciler) start(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	if len(m.Status.SourceClusters) == 0 {
		// A recorded move names its sources (the binding already shows the
		// destination); a person's or a cordon's Migration starts from
		// where the workload runs now.
		m.Status.SourceClusters = MoveSources(m.Annotations[AnnotationMove])
		if len(m.Status.SourceClusters) == 0 {
			m.Status.SourceClusters = BoundClusters(mv.rb)
		}
	}
	if len(m.Status.SourceClusters) == 0 {
		return ctrl.Result{}, r.fail(m, "NotScheduled", "the workload runs on no cluster: nothing to move")
	}
	switch m.Spec.Trigger {
	case v1alpha1.TriggerManual, v1alpha1.TriggerCordon:
		return r.startPlanned(ctx, mv)
	default:
		return r.startDetected(ctx, mv)
	}
}

// unableDestination says why dest cannot restore, "" when it can.
func (r MigrationReconciler) unableDestination(ctx context.Context, dest string) (string, error) {
	if dest == "" {
		return "", nil
	}
	unable, err := r.unableClusters(ctx)
	if err != nil || !unable[dest] {
		return "", err
	}
	return fmt.Sprintf("cluster %s is labelled %s=false: it cannot restore checkpoints", dest, LabelRestore), nil
}

// startPlanned starts a move that has not happened yet (a person's or a
// cordon's): scheduling held; the checkpoints controller takes the fresh
// checkpoint once the Migration is Checkpointing.
func (r MigrationReconciler) startPlanned(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	if m.Spec.Trigger == v1alpha1.TriggerManual {
		dest := m.Spec.DestinationCluster
		if contains(m.Status.SourceClusters, dest) {
			return ctrl.Result{}, r.fail(m, "AlreadyThere", fmt.Sprintf("%s already runs on %s", mv.w.label(), dest))
		}
		m.Status.DestinationCluster = dest
		if refused, res, err := r.refuseOutsidePlacement(ctx, mv); refused { // placement.go
			return res, err
		}
		why, err := r.unableDestination(ctx, dest)
		if err != nil {
			return ctrl.Result{}, err
		}
		if why != "" {
			return r.impossible(ctx, mv, "DestinationCannotRestore", why, true)
		}
	}
	if err := r.hold(ctx, mv.rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.set(m, v1alpha1.MigrationCheckpointing, "taking a fresh checkpoint while the source runs; scheduling of the binding is suspended"); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(mv.w.obj, corev1.EventTypeNormal, "MigrationStarted", "Migration %s (%s): fresh checkpoint on %v", m.Name, m.Spec.Trigger, m.Status.SourceClusters)
	return ctrl.Result{RequeueAfter: poll}, nil
}

// startDetected follows a move Karmada already made: the armed plan
// restores it.
func (r MigrationReconciler) startDetected(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	if m.Status.DestinationCluster == "" {
		m.Status.DestinationCluster = m.Spec.DestinationCluster
	}
	why, err := r.unableDestination(ctx, m.Status.DestinationCluster)
	if err != nil {
		return ctrl.Result{}, err
	}
	if why != "" {
		return r.impossible(ctx, mv, "DestinationCannotRestore", why, false)
	}
	op, err := r.armedPolicy(ctx, mv.w)
	if err != nil {
		return ctrl.Result{}, err
	}
	if op == nil {
		return r.impossible(ctx, mv, "NoCheckpoint", "no verified checkpoint was armed when Karmada moved the workload", false)
	}
	// Without the list the Migration would record only the plan's first
	// checkpoint and judge the restore against it: retry instead (the
	// error reaches the Migration as a MigrationError Event).
	cps, err := r.armedCheckpoints(ctx, mv.w, op.Annotations[restoreKey])
	if err != nil {
		return ctrl.Result{}, err
	}
	m.Status.Checkpoints = cps
	r.condition(m, v1alpha1.ConditionRestoreArmed, true, "Armed", "restore plan "+op.Name+" was armed")
	msg := fmt.Sprintf("Karmada moved the workload to %s; restoring from %s", m.Status.DestinationCluster, op.Annotations[restoreKey])
	return ctrl.Result{RequeueAfter: poll}, r.set(m, v1alpha1.MigrationRestoring, msg)
}

// armedCheckpoints lists the Checkpoints behind an armed plan: the latest
// verified one of each pod of the current template (what the restoreplan
// controller arms), or the plan's own when they are gone.
func (r MigrationReconciler) armedCheckpoints(ctx context.Context, w *workload, armed string) ([]v1alpha1.MigrationCheckpoint, error) {
	cps, err := r.listWorkloadCheckpoints(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of the armed plan: %w", err)
	}
	out := PlanCheckpoints(latestByPod(OfTemplate(cps, TemplateHash(w.u))))
	if len(out) == 0 && armed != "" {
		out = []v1alpha1.MigrationCheckpoint{{Name: armed}}
	}
	return out, nil
}
