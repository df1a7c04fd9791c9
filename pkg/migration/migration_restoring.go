package migration

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// restoring judges the destination from its pods and its reflected
// status: pods that fail to restore end the move (and mark the cluster
// unable to restore); Restored needs every planned pod to run its
// checkpoint, else the pods that started cold are named.
func (r MigrationReconciler) restoring(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	dest := m.Status.DestinationCluster
	pods, err := r.Pods.Pods(ctx, dest, mv.w.ns(), mv.w.selector)
	if err != nil {
		return ctrl.Result{}, err
	}
	j := JudgePods(pods)
	if len(j.Failed) > 0 {
		return r.restoreFailed(ctx, mv, j.Failed)
	}
	st := Destination(mv.rb, dest)
	if !st.Healthy {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if ok, err := r.restoredFromPlan(ctx, mv, st.RestoredFrom); !ok || err != nil {
		return ctrl.Result{RequeueAfter: poll}, err
	}
	cold, pending := ColdPlannedPods(mv.w.kind(), m.Status.Checkpoints, j)
	if len(cold) > 0 {
		msg := fmt.Sprintf("%s runs healthy but these planned pods did not restore their checkpoint: %s", dest, strings.Join(cold, "; "))
		return r.impossible(ctx, mv, "DestinationStartedCold", msg, false)
	}
	if pending {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	r.condition(m, v1alpha1.ConditionRestored, true, "Restored", fmt.Sprintf("%s runs restored from %s (pods %v)", dest, st.RestoredFrom, j.Restored))
	if err := r.set(m, v1alpha1.MigrationRestored, fmt.Sprintf("%s runs healthy, restored from %s", dest, st.RestoredFrom)); err != nil {
		return ctrl.Result{}, err
	}
	// Restore once: the restoreplan controller sees the move ended and
	// withdraws the plan from the now settled destination.
	r.Recorder.Eventf(mv.w.obj, corev1.EventTypeNormal, "Restored", "Migration %s: %s runs restored from %s", m.Name, dest, st.RestoredFrom)
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "Restored", "%s runs restored from %s", dest, st.RestoredFrom)
	return ctrl.Result{}, nil
}

// restoredFromPlan says whether the destination reports a restore from
// one of the move's checkpoints. It may report a newer verified checkpoint
// of the workload (the plan was re-armed between arming and Karmada
// writing the Work): that one is recorded. An older one is waited out (it
// is being re-rendered). Anything else is a cold start.
func (r MigrationReconciler) restoredFromPlan(ctx context.Context, mv *move, from string) (bool, error) {
	m := mv.m
	if from != "" && contains(checkpointNames(m.Status.Checkpoints), from) {
		return true, nil
	}
	if cluster, _ := receiverOf(m); from == "" && cluster != "" {
		// A receiver ran healthy before the move: until Karmada renders
		// its rule it reports no restore (its new pods start cold and are
		// rolled onto the plan then). The phase deadline bounds the wait.
		return false, nil
	}
	cp := &v1alpha1.Checkpoint{}
	if from != "" && r.reader().Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: from}, cp) == nil &&
		cp.Labels[LabelWorkload] == mv.w.label() && cp.Status.Phase == v1alpha1.CheckpointSucceeded {
		if r.olderThanPlan(ctx, m, cp) {
			return false, nil
		}
		recorded := PlanCheckpoints(map[PodKey]*v1alpha1.Checkpoint{{Cluster: cp.Labels[LabelCluster], Pod: cp.Spec.PodName}: cp})
		if len(m.Status.Checkpoints) == 1 {
			recorded[0].Into = m.Status.Checkpoints[0].Into
		}
		m.Status.Checkpoints = recorded
		return true, nil
	}
	msg := fmt.Sprintf("%s runs healthy but did not restore from %v (restoredFrom=%q): it started cold", m.Status.DestinationCluster, checkpointNames(m.Status.Checkpoints), from)
	_, err := r.impossible(ctx, mv, "DestinationStartedCold", msg, false)
	return false, err
}

// olderThanPlan says whether cp completed before every checkpoint the
// Migration armed.
func (r MigrationReconciler) olderThanPlan(ctx context.Context, m *v1alpha1.Migration, cp *v1alpha1.Checkpoint) bool {
	older := false
	for _, mc := range m.Status.Checkpoints {
		planned := &v1alpha1.Checkpoint{}
		if err := r.reader().Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: mc.Name}, planned); err != nil {
			return false
		}
		if cp.Name == planned.Name || newer(cp, planned) {
			return false
		}
		older = true
	}
	return older
}

// restoreFailed ends a move whose destination pods cannot restore and
// marks the destination so that the plan no longer targets it (the pods
// are re-rendered from their original images) and the next move avoids it.
func (r MigrationReconciler) restoreFailed(ctx context.Context, mv *move, failed []string) (ctrl.Result, error) {
	dest := mv.m.Status.DestinationCluster
	why := fmt.Sprintf("pods on %s failed to restore: %s", dest, strings.Join(failed, "; "))
	if err := r.markUnable(ctx, dest, why); err != nil {
		return ctrl.Result{}, err
	}
	return r.impossible(ctx, mv, "RestoreFailed", why+fmt.Sprintf(" (cluster %s is now labelled %s=false)", dest, LabelRestore), false)
}

// impossible applies the policy's OnRestoreImpossible: ColdStart ends the
// move FellBack (the workload starts from its image, state lost), Hold
// keeps the binding's scheduling suspended (when the move can still be
// held) and says so.
func (r MigrationReconciler) impossible(ctx context.Context, mv *move, reason, msg string, holdable bool) (ctrl.Result, error) {
	m := mv.m
	if holdable && mv.p.OnRestoreImpossibleOrDefault() == v1alpha1.RestoreImpossibleHold {
		return r.holdMove(ctx, mv, msg)
	}
	if err := r.release(ctx, mv.rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	if m.Spec.Trigger == v1alpha1.TriggerManual && m.Status.Phase != v1alpha1.MigrationRestoring {
		if err := r.moveTo(ctx, mv.rb, m.Spec.DestinationCluster, r.now(), m.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.condition(m, v1alpha1.ConditionFellBack, true, reason, msg)
	if err := r.set(m, v1alpha1.MigrationFellBack, "cold start: "+msg); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(mv.w.obj, corev1.EventTypeWarning, "ColdStart", "Migration %s: %s", m.Name, msg)
	r.Recorder.Eventf(m, corev1.EventTypeWarning, reason, "%s", msg)
	return ctrl.Result{}, nil
}

// holdMove keeps the binding's scheduling suspended (onRestoreImpossible=Hold).
func (r MigrationReconciler) holdMove(ctx context.Context, mv *move, msg string) (ctrl.Result, error) {
	m := mv.m
	if err := r.hold(ctx, mv.rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	if m.Status.Phase == "" || m.Status.Phase == v1alpha1.MigrationPending {
		_ = r.set(m, v1alpha1.MigrationCheckpointing, "")
	}
	m.Status.Message = "held: " + msg + " (policy onRestoreImpossible=Hold keeps the binding's scheduling suspended until the phase deadline; delete this Migration to release)"
	r.condition(m, v1alpha1.ConditionFellBack, false, "Held", msg)
	r.Recorder.Eventf(mv.w.obj, corev1.EventTypeWarning, "MoveHeld", "Migration %s: %s", m.Name, m.Status.Message)
	return ctrl.Result{RequeueAfter: min(interval(mv.p), r.deadlineLeft(m))}, nil
}

func checkpointNames(cps []v1alpha1.MigrationCheckpoint) []string {
	out := make([]string, 0, len(cps))
	for _, c := range cps {
		out = append(out, c.Name)
	}
	return out
}
