package migration

import (
	"context"
	"fmt"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// MigrationReconciler drives one Migration through its phases:
//
//	Manual, Cordon:  Checkpointing (scheduling held, fresh checkpoint) -> Armed
//	                 (plan armed, hold lifted / placement moved) -> Restoring -> Restored
//	detected moves:  Restoring (the armed plan restores the destination) -> Restored
//
// and FellBack when no restore is possible (ColdStart), Failed on errors
// it cannot recover from and for a move that does not happen (a Cordon
// Migration whose cordon was lifted or that has no new cluster to go to:
// see noMove).
type MigrationReconciler struct{ *Controller }

const poll = 2 * time.Second

// Reconcile implements reconcile.Reconciler.
func (r MigrationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &v1alpha1.Migration{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if isTerminal(m.Status.Phase) {
		return ctrl.Result{}, nil
	}
	before := m.Status.DeepCopy()
	res, err := r.step(ctx, m)
	if err != nil {
		r.Recorder.Eventf(m, corev1.EventTypeWarning, "MigrationError", "%v", err)
	}
	m.Status.ObservedGeneration = m.Generation
	if !equalStatus(before, &m.Status) {
		if uerr := r.Client.Status().Update(ctx, m); uerr != nil {
			return ctrl.Result{}, uerr
		}
		if isTerminal(m.Status.Phase) {
			r.finished(m)
		}
	}
	return res, err
}

func equalStatus(a, b *v1alpha1.MigrationStatus) bool {
	return a.Phase == b.Phase && a.Message == b.Message && a.DestinationCluster == b.DestinationCluster &&
		len(a.Conditions) == len(b.Conditions) && len(a.Checkpoints) == len(b.Checkpoints) && len(a.SourceClusters) == len(b.SourceClusters) &&
		conditionsEqual(a.Conditions, b.Conditions)
}

func conditionsEqual(a, b []metav1.Condition) bool {
	for _, c := range a {
		o := meta.FindStatusCondition(b, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.Message != c.Message {
			return false
		}
	}
	return true
}

func (r MigrationReconciler) finished(m *v1alpha1.Migration) {
	d := m.Status.Durations
	sec := func(x *metav1.Duration) float64 {
		if x == nil {
			return 0
		}
		return x.Seconds()
	}
	observeFinished(string(m.Spec.Trigger), string(m.Status.Phase), sec(d.Checkpoint), sec(d.Restore), sec(d.Total))
}

func (r MigrationReconciler) set(m *v1alpha1.Migration, phase v1alpha1.MigrationPhase, msg string) error {
	return SetPhase(&m.Status, phase, r.now(), msg)
}

func (r MigrationReconciler) condition(m *v1alpha1.Migration, typ string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&m.Status.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: m.Generation})
}

// fail ends the move with Failed.
func (r MigrationReconciler) fail(m *v1alpha1.Migration, reason, msg string) (ctrl.Result, error) {
	_ = r.set(m, v1alpha1.MigrationFailed, msg)
	r.condition(m, v1alpha1.ConditionRestored, false, reason, msg)
	r.Recorder.Eventf(m, corev1.EventTypeWarning, reason, "%s", msg)
	return ctrl.Result{}, nil
}

func (r MigrationReconciler) step(ctx context.Context, m *v1alpha1.Migration) (ctrl.Result, error) {
	ref := m.Spec.WorkloadRef
	w, err := r.getWorkload(ctx, m.Namespace, ref.Kind, ref.Name)
	if apierrors.IsNotFound(err) {
		return r.fail(m, "WorkloadNotFound", fmt.Sprintf("%s %s/%s does not exist", ref.Kind, m.Namespace, ref.Name))
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	p, err := r.policyFor(ctx, w)
	if err != nil {
		return ctrl.Result{}, err
	}
	if p == nil {
		return r.fail(m, "NotProtected", fmt.Sprintf("no CheckpointPolicy in %s selects %s %s", m.Namespace, ref.Kind, ref.Name))
	}
	rb, err := r.binding(ctx, w)
	if apierrors.IsNotFound(err) {
		return r.fail(m, "NotPropagated", fmt.Sprintf("%s %s/%s has no ResourceBinding", ref.Kind, m.Namespace, ref.Name))
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	switch m.Status.Phase {
	case "", v1alpha1.MigrationPending:
		return r.start(ctx, m, p, w, rb)
	case v1alpha1.MigrationCheckpointing:
		return r.checkpointing(ctx, m, p, w, rb)
	case v1alpha1.MigrationArmed:
		return r.armed(ctx, m, w, rb)
	case v1alpha1.MigrationRestoring:
		return r.restoring(ctx, m, p, w, rb)
	}
	return ctrl.Result{}, nil
}

func (r MigrationReconciler) start(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding) (ctrl.Result, error) {
	if len(m.Status.SourceClusters) == 0 {
		// A recorded move names its sources (the binding already shows the
		// destination); a person's or a cordon's Migration starts from
		// where the workload runs now.
		m.Status.SourceClusters = MoveSources(m.Annotations[AnnotationMove])
		if len(m.Status.SourceClusters) == 0 {
			m.Status.SourceClusters = BoundClusters(rb)
		}
	}
	if len(m.Status.SourceClusters) == 0 {
		return r.fail(m, "NotScheduled", "the workload runs on no cluster: nothing to move")
	}
	unable, err := r.unableClusters(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	switch m.Spec.Trigger {
	case v1alpha1.TriggerManual, v1alpha1.TriggerCordon:
		return r.startPlanned(ctx, m, p, w, rb, unable)
	default:
		return r.startDetected(ctx, m, p, w, rb, unable)
	}
}

// startPlanned starts a move that has not happened yet (a person's or a
// cordon's): scheduling held, a fresh checkpoint asked for.
func (r MigrationReconciler) startPlanned(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding, unable map[string]bool) (ctrl.Result, error) {
	if m.Spec.Trigger == v1alpha1.TriggerManual {
		dest := m.Spec.DestinationCluster
		for _, s := range m.Status.SourceClusters {
			if s == dest {
				return r.fail(m, "AlreadyThere", fmt.Sprintf("%s already runs on %s", w.label(), dest))
			}
		}
		m.Status.DestinationCluster = dest
		if unable[dest] {
			return r.impossible(ctx, m, p, w, rb, "DestinationCannotRestore",
				fmt.Sprintf("cluster %s is labelled %s=false: it cannot restore checkpoints", dest, LabelRestore), true)
		}
	}
	if err := r.hold(ctx, rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.freshCheckpoints(ctx, m, p, w); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.set(m, v1alpha1.MigrationCheckpointing, "taking a fresh checkpoint while the source runs; scheduling of the binding is suspended"); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "MigrationStarted", "Migration %s (%s): fresh checkpoint on %v", m.Name, m.Spec.Trigger, m.Status.SourceClusters)
	return ctrl.Result{RequeueAfter: poll}, nil
}

// startDetected follows a move Karmada already made: the armed plan
// restores it.
func (r MigrationReconciler) startDetected(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding, unable map[string]bool) (ctrl.Result, error) {
	dest := m.Status.DestinationCluster
	if dest == "" {
		dest = m.Spec.DestinationCluster
		m.Status.DestinationCluster = dest
	}
	if unable[dest] {
		return r.impossible(ctx, m, p, w, rb, "DestinationCannotRestore",
			fmt.Sprintf("cluster %s is labelled %s=false: it cannot restore checkpoints", dest, LabelRestore), false)
	}
	op, err := r.armedPolicy(ctx, w)
	if err != nil {
		return ctrl.Result{}, err
	}
	if op == nil {
		return r.impossible(ctx, m, p, w, rb, "NoCheckpoint", "no verified checkpoint was armed when Karmada moved the workload", false)
	}
	// Without the list the Migration would record only the plan's first
	// checkpoint and judge the restore against it: retry instead (the
	// error reaches the Migration as a MigrationError Event).
	cps, err := r.armedCheckpoints(ctx, w, op.Annotations)
	if err != nil {
		return ctrl.Result{}, err
	}
	m.Status.Checkpoints = cps
	r.condition(m, v1alpha1.ConditionRestoreArmed, true, "Armed", "restore plan "+op.Name+" was armed")
	if err := r.set(m, v1alpha1.MigrationRestoring, fmt.Sprintf("Karmada moved the workload to %s; restoring from %s", dest, op.Annotations[restoreKey])); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: poll}, nil
}

// freshCheckpoints creates a Checkpoint of every running pod on the sources.
func (r MigrationReconciler) freshCheckpoints(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload) error {
	existing, err := r.migrationCheckpoints(ctx, m)
	if err != nil || len(existing) > 0 {
		return err
	}
	n := 0
	for _, cluster := range m.Status.SourceClusters {
		pods, err := r.Pods.Pods(ctx, cluster, w.ns(), w.selector)
		if err != nil {
			return err
		}
		for _, pod := range runningPods(pods) {
			if _, err := r.createCheckpoint(ctx, p, w, cluster, pod.Name, m.Name); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no running pod of %s on %v to checkpoint", w.label(), m.Status.SourceClusters)
	}
	return nil
}

func (r MigrationReconciler) migrationCheckpoints(ctx context.Context, m *v1alpha1.Migration) ([]v1alpha1.Checkpoint, error) {
	var l v1alpha1.CheckpointList
	if err := r.reader().List(ctx, &l, client.InNamespace(m.Namespace), client.MatchingLabels{LabelMigration: m.Name}); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func (r MigrationReconciler) checkpointing(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding) (ctrl.Result, error) {
	// A cordon lifted, or one with nowhere to go, ends here and lifts the
	// hold (a fresh checkpoint already asked for still completes, and the
	// policy arms it like any other).
	if ended, err := r.cordonOver(ctx, m, w, rb); ended || err != nil {
		return ctrl.Result{}, err
	}
	if dest := m.Spec.DestinationCluster; dest != "" {
		// A held move (onRestoreImpossible=Hold) stays held while its
		// destination cannot restore: start() held it, and every later
		// round lands here, which would otherwise checkpoint and move it.
		unable, err := r.unableClusters(ctx)
		if err != nil {
			return ctrl.Result{}, err
		}
		if unable[dest] {
			return r.impossible(ctx, m, p, w, rb, "DestinationCannotRestore",
				fmt.Sprintf("cluster %s is labelled %s=false: it cannot restore checkpoints", dest, LabelRestore), true)
		}
	}
	cps, err := r.migrationCheckpoints(ctx, m)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(cps) == 0 {
		if err := r.freshCheckpoints(ctx, m, p, w); err != nil {
			return ctrl.Result{RequeueAfter: poll}, err
		}
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if InProgress(cps) {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	latest := map[string]*v1alpha1.Checkpoint{}
	var failed []string
	for i := range cps {
		if cps[i].Status.Phase == v1alpha1.CheckpointSucceeded && len(cps[i].Status.Containers) > 0 {
			latest[cps[i].Spec.PodName] = &cps[i]
		} else {
			failed = append(failed, fmt.Sprintf("%s (%s)", cps[i].Name, cps[i].Status.Message))
		}
	}
	if len(failed) > 0 {
		// Fall back on the latest scheduled checkpoints, if any.
		byPod, err := r.workloadCheckpoints(ctx, w)
		if err != nil {
			return ctrl.Result{}, err
		}
		latest = map[string]*v1alpha1.Checkpoint{}
		for pod, list := range byPod {
			if l := LatestVerified(list); l != nil {
				latest[pod] = l
			}
		}
		r.condition(m, v1alpha1.ConditionCheckpointReady, len(latest) > 0, "FreshCheckpointFailed", fmt.Sprintf("fresh checkpoint failed: %v", failed))
		if len(latest) == 0 {
			return r.impossible(ctx, m, p, w, rb, "NoCheckpoint", fmt.Sprintf("the fresh checkpoint failed (%v) and no earlier verified checkpoint exists", failed), true)
		}
		r.Recorder.Eventf(m, corev1.EventTypeWarning, "FreshCheckpointFailed", "fresh checkpoint failed (%v): restoring from the latest scheduled checkpoint", failed)
	} else {
		r.condition(m, v1alpha1.ConditionCheckpointReady, true, "Verified", "fresh checkpoint pushed and verified")
	}
	plan, err := BuildPlan(w.kind(), latest)
	if err != nil {
		return r.impossible(ctx, m, p, w, rb, "InvalidPlan", err.Error(), true)
	}
	plan.TemplateGeneration = w.u.GetGeneration()
	unable, err := r.unableClusters(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	current, err := r.armedPolicy(ctx, w)
	if err != nil {
		return ctrl.Result{}, err
	}
	exclude := ExcludeClusters(BoundClusters(rb), SettledClusters(rb), excluded(current), unable)
	for _, s := range m.Status.SourceClusters { // the sources are never rewritten
		exclude = appendUnique(exclude, s)
	}
	if err := r.arm(ctx, p, w, &plan, exclude); err != nil {
		return ctrl.Result{}, err
	}
	m.Status.Checkpoints = PlanCheckpoints(latest)
	r.condition(m, v1alpha1.ConditionRestoreArmed, true, "Armed", fmt.Sprintf("every cluster but %v restores from %s", exclude, plan.Checkpoint))
	if err := r.set(m, v1alpha1.MigrationArmed, "restore armed from "+plan.Checkpoint); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "RestoreArmed", "Migration %s: restore armed from %s", m.Name, plan.Checkpoint)
	// Let Karmada move it: a person's move changes the placement, in the
	// next round (armed), so that Karmada's binding controller has seen
	// the re-armed OverridePolicy before it writes the destination's Work
	// (it reads policies from its informer cache: moving in the same
	// round as arming can render the destination with the previous plan
	// and roll it twice); a cordon waits for the operator's reschedule (a
	// cordon evicts nothing).
	if m.Spec.Trigger == v1alpha1.TriggerManual {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if err := r.release(ctx, rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: poll}, nil
}

func (r MigrationReconciler) armed(ctx context.Context, m *v1alpha1.Migration, w *workload, rb *workv1alpha2.ResourceBinding) (ctrl.Result, error) {
	if m.Spec.Trigger == v1alpha1.TriggerManual && !placedOn(rb, m.Spec.DestinationCluster) {
		if err := r.moveTo(ctx, rb, m.Spec.DestinationCluster, r.now()); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.release(ctx, rb, m.Name); err != nil { // a restart between arm and release
		return ctrl.Result{}, err
	}
	dest := added(m.Status.SourceClusters, BoundClusters(rb))
	if len(dest) == 0 {
		if m.Spec.Trigger == v1alpha1.TriggerCordon {
			// Over when the move can no longer happen: the cordon was
			// lifted, the cordoned cluster left without a new one joining
			// (a Duplicated or Divided placement kept on clusters that
			// already ran it), or no cluster could ever take it.
			if ended, err := r.cordonOver(ctx, m, w, rb); ended || err != nil {
				return ctrl.Result{}, err
			}
			// Keep the armed plan fresh while waiting: the policy's
			// schedule re-arms it with newer checkpoints.
			return ctrl.Result{RequeueAfter: 10 * poll}, nil
		}
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if m.Spec.DestinationCluster != "" && !contains(dest, m.Spec.DestinationCluster) {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	if m.Status.DestinationCluster == "" {
		m.Status.DestinationCluster = dest[0]
	}
	if err := r.set(m, v1alpha1.MigrationRestoring, fmt.Sprintf("Karmada placed the workload on %s; waiting for it to run restored", m.Status.DestinationCluster)); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: poll}, nil
}

func (r MigrationReconciler) restoring(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding) (ctrl.Result, error) {
	dest := m.Status.DestinationCluster
	st := Destination(rb, dest)
	if !st.Healthy {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	used := map[string]bool{}
	for _, c := range m.Status.Checkpoints {
		used[c.Name] = true
	}
	if st.RestoredFrom != "" && !used[st.RestoredFrom] {
		// The plan may have been re-armed with a newer scheduled
		// checkpoint between arming and Karmada writing the destination's
		// Work: any verified checkpoint of this workload is a restore.
		cp := &v1alpha1.Checkpoint{}
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: st.RestoredFrom}, cp)
		if err == nil && cp.Labels[LabelWorkload] == w.label() && cp.Status.Phase == v1alpha1.CheckpointSucceeded {
			if r.olderThanPlan(ctx, m, cp) {
				// An older plan reached the destination first (Karmada
				// rendered its Work before it saw the re-armed policy):
				// it is being re-rendered with the Migration's checkpoint.
				return ctrl.Result{RequeueAfter: poll}, nil
			}
			m.Status.Checkpoints = PlanCheckpoints(map[string]*v1alpha1.Checkpoint{cp.Spec.PodName: cp})
			used[st.RestoredFrom] = true
		}
	}
	if st.RestoredFrom == "" || !used[st.RestoredFrom] {
		msg := fmt.Sprintf("%s runs healthy but did not restore from %v (restoredFrom=%q): it started cold", dest, checkpointNames(m.Status.Checkpoints), st.RestoredFrom)
		return r.impossible(ctx, m, p, w, rb, "DestinationStartedCold", msg, false)
	}
	r.condition(m, v1alpha1.ConditionRestored, true, "Restored", fmt.Sprintf("%s runs restored from %s", dest, st.RestoredFrom))
	if err := r.set(m, v1alpha1.MigrationRestored, fmt.Sprintf("%s runs healthy, restored from %s", dest, st.RestoredFrom)); err != nil {
		return ctrl.Result{}, err
	}
	// Restore once: the destination is now settled, so re-arming excludes
	// it (the plan is withdrawn from it; Retain keeps its pods).
	if err := r.rearm(ctx, p, w); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "Restored", "Migration %s: %s runs restored from %s", m.Name, dest, st.RestoredFrom)
	r.Recorder.Eventf(m, corev1.EventTypeNormal, "Restored", "%s runs restored from %s", dest, st.RestoredFrom)
	return ctrl.Result{}, nil
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

// rearm recomputes the plan's exclusions from the binding now.
func (c *Controller) rearm(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload) error {
	byPod, err := c.workloadCheckpoints(ctx, w)
	if err != nil {
		return err
	}
	rb, err := c.binding(ctx, w)
	if err != nil {
		return err
	}
	latest := map[string]*v1alpha1.Checkpoint{}
	for pod, list := range byPod {
		if l := LatestVerified(list); l != nil {
			latest[pod] = l
		}
	}
	if len(latest) == 0 {
		// No checkpoint on the clusters running it: keep the last plan
		// (its exclusions now cover the destination) until one exists.
		current, err := c.armedPolicy(ctx, w)
		if err != nil || current == nil {
			return err
		}
		unable, err := c.unableClusters(ctx)
		if err != nil {
			return err
		}
		exclude := ExcludeClusters(BoundClusters(rb), SettledClusters(rb), excluded(current), unable)
		for i := range current.Spec.OverrideRules {
			if current.Spec.OverrideRules[i].TargetCluster != nil && len(exclude) > 0 {
				current.Spec.OverrideRules[i].TargetCluster.ExcludeClusters = exclude
			}
		}
		return c.Client.Update(ctx, current)
	}
	var pw v1alpha1.ProtectedWorkload
	return c.armWorkload(ctx, p, w, latest, &pw)
}

// impossible applies the policy's OnRestoreImpossible: ColdStart ends the
// move FellBack (the workload starts from its image, state lost), Hold
// keeps the binding's scheduling suspended (when the move can still be
// held) and says so.
func (r MigrationReconciler) impossible(ctx context.Context, m *v1alpha1.Migration, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding, reason, msg string, holdable bool) (ctrl.Result, error) {
	if holdable && p.OnRestoreImpossibleOrDefault() == v1alpha1.RestoreImpossibleHold {
		if err := r.hold(ctx, rb, m.Name); err != nil {
			return ctrl.Result{}, err
		}
		if m.Status.Phase == "" || m.Status.Phase == v1alpha1.MigrationPending {
			_ = r.set(m, v1alpha1.MigrationCheckpointing, "")
		}
		m.Status.Message = "held: " + msg + " (policy onRestoreImpossible=Hold keeps the binding's scheduling suspended; delete this Migration to release)"
		r.condition(m, v1alpha1.ConditionFellBack, false, "Held", msg)
		r.Recorder.Eventf(w.obj, corev1.EventTypeWarning, "MoveHeld", "Migration %s: %s", m.Name, m.Status.Message)
		return ctrl.Result{RequeueAfter: p.Spec.Schedule.Interval.Duration}, nil
	}
	if err := r.release(ctx, rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	if m.Spec.Trigger == v1alpha1.TriggerManual && m.Status.Phase != v1alpha1.MigrationRestoring {
		if err := r.moveTo(ctx, rb, m.Spec.DestinationCluster, r.now()); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.condition(m, v1alpha1.ConditionFellBack, true, reason, msg)
	if err := r.set(m, v1alpha1.MigrationFellBack, "cold start: "+msg); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeWarning, "ColdStart", "Migration %s: %s", m.Name, msg)
	r.Recorder.Eventf(m, corev1.EventTypeWarning, reason, "%s", msg)
	return ctrl.Result{}, nil
}

// armedCheckpoints lists the Checkpoints behind an armed plan.
func (r MigrationReconciler) armedCheckpoints(ctx context.Context, w *workload, ann map[string]string) ([]v1alpha1.MigrationCheckpoint, error) {
	byPod, err := r.workloadCheckpoints(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of the armed plan: %w", err)
	}
	latest := map[string]*v1alpha1.Checkpoint{}
	for pod, list := range byPod {
		if l := LatestVerified(list); l != nil {
			latest[pod] = l
		}
	}
	out := PlanCheckpoints(latest)
	if len(out) == 0 && ann[restoreKey] != "" {
		out = []v1alpha1.MigrationCheckpoint{{Name: ann[restoreKey]}}
	}
	return out, nil
}

func checkpointNames(cps []v1alpha1.MigrationCheckpoint) []string {
	out := make([]string, 0, len(cps))
	for _, c := range cps {
		out = append(out, c.Name)
	}
	return out
}

// placedOn says whether the binding's placement already names dest only.
func placedOn(rb *workv1alpha2.ResourceBinding, dest string) bool {
	p := rb.Spec.Placement
	return p != nil && p.ClusterAffinity != nil && len(p.ClusterAffinity.ClusterNames) == 1 && p.ClusterAffinity.ClusterNames[0] == dest
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func appendUnique(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}
