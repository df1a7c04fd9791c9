package migration

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// checkpointing waits for the fresh checkpoints and chooses what the move
// restores: the fresh ones, or the latest scheduled ones when a fresh one
// failed. Arming is the restoreplan controller's: the Migration goes Armed
// with its choice, and armed() waits until the plan carries it.
func (r MigrationReconciler) checkpointing(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	// A cordon lifted, or one with nowhere to go, ends here and lifts the hold.
	if ended, err := r.cordonOver(ctx, mv); ended || err != nil {
		return ctrl.Result{}, err
	}
	// A held move stays held while its destination cannot restore.
	why, err := r.unableDestination(ctx, m.Spec.DestinationCluster)
	if err != nil {
		return ctrl.Result{}, err
	}
	if why != "" {
		return r.impossible(ctx, mv, "DestinationCannotRestore", why, true)
	}
	cps, err := r.migrationCheckpoints(ctx, m)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(cps) == 0 || InProgress(cps) {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	chosen, failed, err := r.chooseCheckpoints(ctx, mv.w, cps, m.Status.SourceClusters)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(chosen) == 0 {
		return r.impossible(ctx, mv, "NoCheckpoint", fmt.Sprintf("the fresh checkpoint failed (%v) and no earlier verified checkpoint exists", failed), true)
	}
	if len(failed) > 0 {
		r.condition(m, v1alpha1.ConditionCheckpointReady, true, "FreshCheckpointFailed", fmt.Sprintf("fresh checkpoint failed: %v", failed))
		r.Recorder.Eventf(m, corev1.EventTypeWarning, "FreshCheckpointFailed", "fresh checkpoint failed (%v): restoring from the latest scheduled checkpoint", failed)
	} else {
		r.condition(m, v1alpha1.ConditionCheckpointReady, true, "Verified", "fresh checkpoint pushed and verified")
	}
	m.Status.Checkpoints = PlanCheckpoints(chosen)
	names := checkpointNames(m.Status.Checkpoints)
	return ctrl.Result{RequeueAfter: poll}, r.set(m, v1alpha1.MigrationArmed, fmt.Sprintf("arming the restore from %v", names))
}

// chooseCheckpoints picks what the move restores: the fresh Checkpoints
// when all succeeded, else the latest verified ones of the workload's pods
// on the sources (failed lists the fresh ones that did not succeed). Pods
// are told apart by cluster: another cluster's db-0 is not the source's.
func (r MigrationReconciler) chooseCheckpoints(ctx context.Context, w *workload, fresh []v1alpha1.Checkpoint, sources []string) (map[PodKey]*v1alpha1.Checkpoint, []string, error) {
	chosen := map[PodKey]*v1alpha1.Checkpoint{}
	var failed []string
	for i := range fresh {
		if fresh[i].Status.Phase == v1alpha1.CheckpointSucceeded && len(fresh[i].Status.Containers) > 0 {
			chosen[PodKey{Cluster: fresh[i].Labels[LabelCluster], Pod: fresh[i].Spec.PodName}] = &fresh[i]
		} else {
			failed = append(failed, fmt.Sprintf("%s (%s)", fresh[i].Name, fresh[i].Status.Message))
		}
	}
	if len(failed) == 0 {
		return chosen, nil, nil
	}
	all, err := r.listWorkloadCheckpoints(ctx, w)
	if err != nil {
		return nil, failed, err
	}
	return ofClusters(latestByClusterPod(all), sources), failed, nil
}

// ofClusters keeps the pods of clusters.
func ofClusters(latest map[PodKey]*v1alpha1.Checkpoint, clusters []string) map[PodKey]*v1alpha1.Checkpoint {
	out := map[PodKey]*v1alpha1.Checkpoint{}
	for k, cp := range latest {
		if contains(clusters, k.Cluster) {
			out[k] = cp
		}
	}
	return out
}

// armed waits until the restoreplan controller armed the Migration's
// checkpoints, then lets Karmada move the workload: a person's move
// changes the placement (one round after the plan is seen armed, so that
// Karmada's binding controller, which reads policies from its informer
// cache, has it before it writes the destination's Work); a cordon lifts
// the hold and waits for the operator's reschedule.
func (r MigrationReconciler) armed(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	if ok, err := r.planArmed(ctx, mv); !ok || err != nil {
		return ctrl.Result{RequeueAfter: poll}, err
	}
	if !meta.IsStatusConditionTrue(m.Status.Conditions, v1alpha1.ConditionRestoreArmed) {
		r.condition(m, v1alpha1.ConditionRestoreArmed, true, "Armed", fmt.Sprintf("every cluster but the sources %v restores from %v", m.Status.SourceClusters, checkpointNames(m.Status.Checkpoints)))
		r.Recorder.Eventf(mv.w.obj, corev1.EventTypeNormal, "RestoreArmed", "Migration %s: restore armed from %v", m.Name, checkpointNames(m.Status.Checkpoints))
		if m.Spec.Trigger == v1alpha1.TriggerManual {
			return ctrl.Result{RequeueAfter: poll}, nil
		}
	}
	if m.Spec.Trigger == v1alpha1.TriggerManual && !placedOn(mv.rb, m.Spec.DestinationCluster) {
		kc, err := r.destinationKeychain(ctx, mv.p) // a failed read is retried, not a fallback
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.pullable(ctx, mv, kc); err != nil {
			return r.impossible(ctx, mv, "ImageNotPullable", err.Error(), true)
		}
		if err := r.moveTo(ctx, mv.rb, m.Spec.DestinationCluster, r.now(), m.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.release(ctx, mv.rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	return r.awaitDestination(ctx, mv)
}

// planArmed says whether the restore plan carries the Migration's checkpoints.
func (r MigrationReconciler) planArmed(ctx context.Context, mv *move) (bool, error) {
	op, err := r.armedPolicy(ctx, mv.w)
	if err != nil || op == nil {
		return false, err
	}
	return contains(checkpointNames(mv.m.Status.Checkpoints), op.Annotations[restoreKey]), nil
}

// awaitDestination moves to Restoring once Karmada placed the workload on
// a cluster that did not run it, or gave more replicas to one that ran
// others (a receiver: the moved checkpoints are assigned to its new pods).
func (r MigrationReconciler) awaitDestination(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	dest, err := r.arrivals(ctx, mv.w, m, mv.rb)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(dest) == 0 {
		// A Cordon Migration is over when its move can no longer happen.
		if ended, err := r.cordonOver(ctx, mv); ended || err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if m.Spec.DestinationCluster != "" && !contains(dest, m.Spec.DestinationCluster) {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if m.Status.DestinationCluster == "" {
		m.Status.DestinationCluster = dest[0]
	}
	if err := r.assignReceiver(ctx, mv); err != nil {
		return ctrl.Result{}, err
	}
	msg := fmt.Sprintf("Karmada placed the workload on %s; waiting for it to run restored", m.Status.DestinationCluster)
	return ctrl.Result{RequeueAfter: poll}, r.set(m, v1alpha1.MigrationRestoring, msg)
}

// arrivals are the clusters m's move went to (see Arrivals).
func (c *Controller) arrivals(ctx context.Context, w *workload, m *v1alpha1.Migration, rb *workv1alpha2.ResourceBinding) ([]string, error) {
	cps, err := c.listWorkloadCheckpoints(ctx, w)
	if err != nil {
		return nil, err
	}
	before, err := c.before(ctx, w, m, cps)
	if err != nil {
		return nil, err
	}
	return Arrivals(w.kind(), w.name(), m.Status.SourceClusters, before, rb), nil
}

// assignReceiver gives the Migration's checkpoints the receiver's new pods
// when its destination already ran others (else they keep their names).
func (r MigrationReconciler) assignReceiver(ctx context.Context, mv *move) error {
	cps, err := r.listWorkloadCheckpoints(ctx, mv.w)
	if err != nil {
		return err
	}
	recv, err := r.receiver(ctx, mv, cps)
	if err != nil || recv == nil {
		return err
	}
	mv.m.Status.Checkpoints = AssignInto(mv.m.Status.Checkpoints, *recv)
	r.Recorder.Eventf(mv.m, corev1.EventTypeNormal, "ReceiverAssigned", "%s keeps its %d pods and restores the moved replicas into %v", recv.Cluster, recv.Kept, intoPods(mv.m.Status.Checkpoints))
	return nil
}

func intoPods(cps []v1alpha1.MigrationCheckpoint) []string {
	out := make([]string, 0, len(cps))
	for _, mc := range cps {
		out = append(out, mc.Cluster+"/"+mc.Pod+"->"+restoresInto(mc))
	}
	return out
}

// pullable checks, before a person's move, that the destination can pull
// every image the move restores with kc, the credentials the plan gives
// it (destinationKeychain).
func (r MigrationReconciler) pullable(ctx context.Context, mv *move, kc authn.Keychain) error {
	if r.CheckPull == nil {
		return nil
	}
	for _, mc := range mv.m.Status.Checkpoints {
		for _, image := range mc.Images {
			if err := r.CheckPull(ctx, image, kc); err != nil {
				return fmt.Errorf("%s cannot pull checkpoint %s: %w", mv.m.Spec.DestinationCluster, mc.Name, err)
			}
		}
	}
	return nil
}
