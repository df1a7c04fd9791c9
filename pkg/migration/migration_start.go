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
			m.Status.SourceClusters = PlannedSources(m, BoundClusters(mv.rb))
			m.Status.StartReplicas = BoundReplicas(mv.rb)
		}
	}
	if len(m.Status.SourceClusters) == 0 {
		if m.Spec.Trigger == v1alpha1.TriggerManual && contains(BoundClusters(mv.rb), m.Spec.DestinationCluster) {
			return ctrl.Result{}, r.fail(m, "AlreadyThere", fmt.Sprintf("%s runs on %s only", mv.w.label(), m.Spec.DestinationCluster))
		}
		return ctrl.Result{}, r.fail(m, "NotScheduled", "the workload runs on no cluster: nothing to move")
	}
	switch m.Spec.Trigger {
	case v1alpha1.TriggerManual, v1alpha1.TriggerCordon:
		return r.startPlanned(ctx, mv)
	default:
		return r.startDetected(ctx, mv)
	}
}

// PlannedSources are the clusters a planned move takes the workload from:
// a cordon's cordoned cluster (when bound), a person's move every bound
// cluster but the destination. The others keep their pods, and one that
// receives replicas restores them into its new pods.
func PlannedSources(m *v1alpha1.Migration, bound []string) []string {
	switch cordoned := m.Labels[LabelCluster]; {
	case m.Spec.Trigger == v1alpha1.TriggerCordon && contains(bound, cordoned):
		return []string{cordoned}
	case m.Spec.Trigger == v1alpha1.TriggerManual:
		var out []string
		for _, c := range bound {
			if c != m.Spec.DestinationCluster {
				out = append(out, c)
			}
		}
		return out
	}
	return bound
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
	cps, err := r.armedCheckpoints(ctx, mv, op.Annotations[restoreKey])
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
// controller arms), or the plan's own when they are gone. A move into a
// cluster that already runs others restores only the sources' pods, each
// into one of the receiver's new pods.
func (r MigrationReconciler) armedCheckpoints(ctx context.Context, mv *move, armed string) ([]v1alpha1.MigrationCheckpoint, error) {
	w, m := mv.w, mv.m
	all, err := r.listWorkloadCheckpoints(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of the armed plan: %w", err)
	}
	latest := latestByClusterPod(OfTemplate(all, w.templateHash))
	recv, err := r.receiver(ctx, mv, all)
	if err != nil {
		return nil, err
	}
	if recv != nil {
		return AssignInto(PlanCheckpoints(ofClusters(latest, m.Status.SourceClusters)), *recv), nil
	}
	out := PlanCheckpoints(latest)
	if len(out) == 0 && armed != "" {
		out = []v1alpha1.MigrationCheckpoint{{Name: armed}}
	}
	return out, nil
}

// receiver is the Migration's destination when it is a cluster that
// received replicas while running others, else nil.
func (c *Controller) receiver(ctx context.Context, mv *move, cps []v1alpha1.Checkpoint) (*Receiver, error) {
	if mv.w.kind() != "StatefulSet" || mv.m.Status.DestinationCluster == "" {
		return nil, nil
	}
	before, err := c.before(ctx, mv.w, mv.m, cps)
	if err != nil {
		return nil, err
	}
	for _, recv := range Receivers(mv.w.name(), before, BoundReplicas(mv.rb), mv.m.Status.SourceClusters) {
		if recv.Cluster == mv.m.Status.DestinationCluster {
			return &recv, nil
		}
	}
	return nil, nil
}
