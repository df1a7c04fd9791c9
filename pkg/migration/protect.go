package migration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// PolicyReconciler protects the workloads of one CheckpointPolicy:
// scheduled checkpoints, retention, the armed restore, and the Migrations
// of moves it sees in the bindings.
type PolicyReconciler struct{ *Controller }

// Reconcile implements reconcile.Reconciler.
func (r PolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &v1alpha1.CheckpointPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if p.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // owner references clean up
	}
	interval := p.Spec.Schedule.Interval.Duration
	if interval < MinInterval {
		interval = MinInterval
	}
	status := v1alpha1.CheckpointPolicyStatus{ObservedGeneration: p.Generation, Conditions: p.Status.Conditions}
	previous := map[string]v1alpha1.ProtectedWorkload{}
	for _, w := range p.Status.Workloads {
		previous[w.Kind+"/"+w.Name] = w
	}
	workloads, err := r.selectedWorkloads(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	next := interval
	var errs []error
	for _, w := range workloads {
		pw, wait, err := r.protect(ctx, p, w, interval, previous[w.kind()+"/"+w.name()])
		if err != nil {
			errs = append(errs, err)
			pw.Message = err.Error()
		}
		if wait > 0 && wait < next {
			next = wait
		}
		status.Workloads = append(status.Workloads, pw)
		status.ProtectedWorkloads++
		if pw.Armed {
			status.ArmedWorkloads++
		}
	}
	armedWorkloads.WithLabelValues(p.Namespace, p.Name).Set(float64(status.ArmedWorkloads))
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Protecting", ObservedGeneration: p.Generation,
		Message: fmt.Sprintf("%d workloads protected, %d armed", status.ProtectedWorkloads, status.ArmedWorkloads)}
	if len(errs) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Error", errs[0].Error()
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	p.Status = status
	if err := r.Client.Status().Update(ctx, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if len(errs) > 0 {
		klog.FromContext(ctx).Error(errs[0], "protect", "policy", req.NamespacedName, "errors", len(errs))
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// protect runs one round for one workload and says when to look again.
func (r PolicyReconciler) protect(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, interval time.Duration, prev v1alpha1.ProtectedWorkload) (v1alpha1.ProtectedWorkload, time.Duration, error) {
	pw := v1alpha1.ProtectedWorkload{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()}
	rb, err := r.binding(ctx, w)
	if apierrors.IsNotFound(err) {
		pw.Message = "no ResourceBinding yet: the workload is not propagated"
		return pw, 0, nil
	}
	if err != nil {
		return pw, 0, err
	}
	if err := r.releaseOrphanHold(ctx, rb); err != nil {
		return pw, 0, err
	}
	bound := BoundClusters(rb)
	pw.Clusters = bound
	if len(bound) == 0 {
		// Mid-move: an eviction takes the source out of the binding before
		// the scheduler adds the destination. Remember where the workload
		// ran, or the next round would compare the destination with an
		// empty list and never see the move.
		pw.Clusters = prev.Clusters
	}
	if err := r.detectMove(ctx, p, w, prev.Clusters, bound); err != nil {
		return pw, 0, err
	}
	byPod, err := r.workloadCheckpoints(ctx, w)
	if err != nil {
		return pw, 0, err
	}
	active, err := r.activeMigration(ctx, w)
	if err != nil {
		return pw, 0, err
	}
	inUse := checkpointsOf(active)
	now := r.now()
	wait := interval
	// Retention per pod and cluster, over every Checkpoint of the
	// workload (pods that moved or went away included).
	kept := map[string][]v1alpha1.Checkpoint{}
	for pod, list := range byPod {
		byCluster := map[string][]v1alpha1.Checkpoint{}
		for _, cp := range list {
			byCluster[cp.Labels[LabelCluster]] = append(byCluster[cp.Labels[LabelCluster]], cp)
		}
		for _, cps := range byCluster {
			k, deleted := Prune(cps, p.KeepOrDefault(), inUse)
			r.prune(ctx, p, deleted)
			kept[pod] = append(kept[pod], k...)
		}
	}
	// The plan restores each pod's latest verified checkpoint of the
	// current pod template, wherever it was taken: mid-move the destination
	// has none of its own yet.
	hash := TemplateHash(w.u)
	latest := map[string]*v1alpha1.Checkpoint{}
	stale := false
	for pod, list := range kept {
		if l := LatestVerified(OfTemplate(list, hash)); l != nil {
			latest[pod] = l
		} else if LatestVerified(list) != nil {
			stale = true
		}
	}
	var errs []error
	for _, cluster := range bound {
		pods, err := r.Pods.Pods(ctx, cluster, w.ns(), w.selector)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pod := range runningPods(pods) {
			ref := v1alpha1.PodCheckpointRef{Pod: pod.Name, Cluster: cluster}
			if l := latest[pod.Name]; l != nil {
				ref.Checkpoint, ref.Images, ref.CompletionTime = l.Name, images(l), l.Status.CompletionTime
			}
			pw.Pods = append(pw.Pods, ref)
			if !PodRunsTemplate(&pod, w.u) {
				continue // an old pod of a rollout: its state is not the new template's
			}
			due := Due(onCluster(OfTemplate(kept[pod.Name], hash), cluster), interval, now)
			if due > 0 {
				if due < wait {
					wait = due
				}
				continue
			}
			if _, err := r.createCheckpoint(ctx, p, w, cluster, pod.Name, ""); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if active != nil {
		// A move in progress owns the plan: re-arming now with a newer
		// checkpoint would re-render the destination while it restores
		// and roll its pods (a half-rolled StatefulSet then looks settled,
		// and its last pods start cold). The round after the Migration
		// ends re-arms and withdraws the plan from the destination.
		if err := r.keepArmed(ctx, w, active, &pw); err != nil {
			errs = append(errs, err)
		}
	} else if err := r.armWorkload(ctx, p, w, latest, &pw); err != nil {
		errs = append(errs, err)
	}
	if stale && len(latest) == 0 && pw.Message != "" {
		pw.Message = "the pod template changed since the last verified checkpoint: " +
			"waiting for a checkpoint of the new template (a move now starts cold rather than restore the old version)"
	}
	if len(errs) > 0 {
		return pw, wait, errs[0]
	}
	return pw, wait, nil
}

// MinInterval is the shortest schedule the controller runs, whatever the
// CRD let through.
const MinInterval = 5 * time.Second

// Due says how long until the pod's next scheduled checkpoint: 0 means
// now. Nothing is due while one is in progress; the newest finished one
// (Succeeded or Failed, so a failing pod is retried once per interval, not
// in a hot loop) starts the interval.
func Due(cps []v1alpha1.Checkpoint, interval time.Duration, now time.Time) time.Duration {
	if InProgress(cps) {
		return interval
	}
	var newest time.Time
	for i := range cps {
		t := cps[i].CreationTimestamp.Time
		if cps[i].Status.CompletionTime != nil {
			t = cps[i].Status.CompletionTime.Time
		}
		if t.After(newest) {
			newest = t
		}
	}
	if newest.IsZero() {
		return 0
	}
	if left := newest.Add(interval).Sub(now); left > 0 {
		return left
	}
	return 0
}

func onCluster(cps []v1alpha1.Checkpoint, cluster string) []v1alpha1.Checkpoint {
	var out []v1alpha1.Checkpoint
	for _, c := range cps {
		if c.Labels[LabelCluster] == cluster {
			out = append(out, c)
		}
	}
	return out
}

// armWorkload (re)builds the restore plan from the latest verified
// checkpoints and applies it, excluding the clusters running the workload.
func (c *Controller) armWorkload(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, latest map[string]*v1alpha1.Checkpoint, pw *v1alpha1.ProtectedWorkload) error {
	b, err := c.binding(ctx, w)
	if err != nil {
		return err
	}
	current, err := c.armedPolicy(ctx, w)
	if err != nil {
		return err
	}
	unable, err := c.unableClusters(ctx)
	if err != nil {
		return err
	}
	exclude := ExcludeClusters(BoundClusters(b), SettledClusters(b), excluded(current), unable)
	if len(latest) == 0 {
		pw.Armed = false
		pw.Message = "no verified checkpoint yet: a move now would start cold"
		return c.arm(ctx, p, w, nil, nil)
	}
	plan, err := BuildPlan(w.kind(), latest)
	if err != nil {
		pw.Message = fmt.Sprintf("cannot build restore plan: %v", err)
		return c.arm(ctx, p, w, nil, nil)
	}
	plan.TemplateGeneration = w.u.GetGeneration()
	if len(exclude) == 0 {
		pw.Message = "no cluster runs the workload healthy yet: not armed (the plan would rewrite the source)"
		return c.arm(ctx, p, w, nil, nil)
	}
	if err := c.arm(ctx, p, w, &plan, exclude); err != nil {
		return err
	}
	pw.Armed, pw.ArmedCheckpoint = true, plan.Checkpoint
	return nil
}

// checkpointsOf are the Checkpoints an unfinished Migration uses (none
// when m is nil): retention never prunes them.
func checkpointsOf(m *v1alpha1.Migration) map[string]bool {
	out := map[string]bool{}
	if m == nil {
		return out
	}
	for _, cp := range m.Status.Checkpoints {
		out[cp.Name] = true
	}
	return out
}

// keepArmed reports the plan as it stands while Migration m runs.
func (c *Controller) keepArmed(ctx context.Context, w *workload, m *v1alpha1.Migration, pw *v1alpha1.ProtectedWorkload) error {
	op, err := c.armedPolicy(ctx, w)
	if err != nil {
		return err
	}
	if op != nil {
		pw.Armed, pw.ArmedCheckpoint = true, op.Annotations[restoreKey]
	}
	pw.Message = fmt.Sprintf("Migration %s is %s: the restore plan stays as it armed it until the move ends", m.Name, m.Status.Phase)
	return nil
}

// prune deletes Checkpoints past retention and their images. Karmada
// deletes the propagated copies; a registry that refuses the delete gets
// an Event, and the Checkpoint is deleted anyway (the registry's own
// retention must then reclaim it).
func (c *Controller) prune(ctx context.Context, p *v1alpha1.CheckpointPolicy, deleted []v1alpha1.Checkpoint) {
	if len(deleted) == 0 {
		return
	}
	kc := c.keychain(ctx, p)
	for i := range deleted {
		cp := &deleted[i]
		result := "ok"
		for _, cc := range cp.Status.Containers {
			if err := c.DeleteImage(ctx, cc.Image, kc); err != nil {
				result = "error"
				c.Recorder.Eventf(p, corev1.EventTypeWarning, "ImageDeleteFailed", "checkpoint %s: %v", cp.Name, err)
			}
		}
		if err := c.Client.Delete(ctx, cp); err != nil && !apierrors.IsNotFound(err) {
			c.Recorder.Eventf(p, corev1.EventTypeWarning, "CheckpointDeleteFailed", "checkpoint %s: %v", cp.Name, err)
			continue
		}
		checkpointsPruned.WithLabelValues(result).Inc()
	}
}

// keychain reads the policy's registry credentials from the controller's
// namespace, uncached (see Controller.Secrets); without them the registry
// is used anonymously.
func (c *Controller) keychain(ctx context.Context, p *v1alpha1.CheckpointPolicy) authn.Keychain {
	if p.Spec.CredentialsSecretRef == nil {
		return nil
	}
	s := &corev1.Secret{}
	key := client.ObjectKey{Namespace: c.Options.SecretNamespace, Name: p.Spec.CredentialsSecretRef.Name}
	if err := c.getSecret(ctx, key, s); err != nil {
		c.Recorder.Eventf(p, corev1.EventTypeWarning, "CredentialsUnavailable", "registry credentials %s: %v", key, err)
		return nil
	}
	cfg, err := registryauth.Parse(s)
	if err != nil {
		c.Recorder.Eventf(p, corev1.EventTypeWarning, "CredentialsUnavailable", "registry credentials %s: %v", key, err)
		return nil
	}
	return cfg.Keychain()
}

// detectMove records a Migration when the binding's clusters changed and
// gained a cluster while no Migration of the workload is running (a cordon
// or a person's Migration follows its own move).
func (c *Controller) detectMove(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, before, after []string) error {
	if len(before) == 0 {
		return nil
	}
	dest := added(before, after)
	if len(dest) == 0 {
		return nil
	}
	active, err := c.activeMigration(ctx, w)
	if err != nil || active != nil {
		return err
	}
	b, err := c.binding(ctx, w)
	if err != nil {
		return err
	}
	trigger, err := c.classify(ctx, b, before)
	if err != nil {
		return err
	}
	// The same move can be seen more than once (the policy's record of the
	// clusters lags when its status update conflicts, and a binding update
	// and a cluster taint arrive together). A move is identified by its
	// clusters and by the Migration before it: a re-detection finds itself
	// as the latest Migration, and racing reconciles derive the same name.
	last, err := c.lastMigration(ctx, w)
	if err != nil {
		return err
	}
	move := strings.Join(before, ",") + "->" + dest[0]
	prev := ""
	if last != nil {
		if last.Annotations[AnnotationMove] == move {
			return nil
		}
		prev = last.Name
	}
	return c.recordMove(ctx, p, w, moveName(w.name(), "move", move, prev), move, trigger, before, dest[0])
}

// lastMigration is the workload's most recent Migration, whatever its phase.
func (c *Controller) lastMigration(ctx context.Context, w *workload) (*v1alpha1.Migration, error) {
	var l v1alpha1.MigrationList
	if err := c.reader().List(ctx, &l, client.InNamespace(w.ns())); err != nil {
		return nil, err
	}
	var mine []v1alpha1.Migration
	for _, m := range l.Items {
		if m.Spec.WorkloadRef.Kind == w.kind() && m.Spec.WorkloadRef.Name == w.name() {
			mine = append(mine, m)
		}
	}
	return newest(mine), nil
}

func added(before, after []string) []string {
	was := map[string]bool{}
	for _, c := range before {
		was[c] = true
	}
	var out []string
	for _, c := range after {
		if !was[c] {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// recordMove creates a Migration for a move the controller saw, already
// Restoring (the move happened; the armed plan restores the destination).
func (c *Controller) recordMove(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, name, move string, trigger v1alpha1.MigrationTrigger, sources []string, dest string) error {
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{AnnotationMove: move},
			Namespace:   w.ns(),
			Labels:      map[string]string{LabelWorkload: w.label(), LabelPolicy: p.Name, LabelManagedBy: ManagedBy},
		},
		// Everything the Migration needs is in what Create writes: the
		// destination in the spec, the sources in AnnotationMove. A status
		// write after the Create would race the Migration's own reconcile
		// (it starts at once) and, lost to a conflict, leave a Migration
		// without a destination.
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()},
			DestinationCluster: dest,
			Trigger:            trigger,
		},
	}
	if err := c.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // another reconcile recorded this move
		}
		return fmt.Errorf("record %s migration of %s: %w", trigger, w.label(), err)
	}
	c.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "MoveDetected", "%s: %v -> %s, recorded as Migration %s", trigger, sources, dest, m.Name)
	return nil
}

// releaseOrphanHold lifts a scheduling hold whose Migration is gone or
// finished: deleting a held Migration (onRestoreImpossible=Hold) is how a
// person releases the move, and a hold must never outlive its Migration.
func (c *Controller) releaseOrphanHold(ctx context.Context, rb *workv1alpha2.ResourceBinding) error {
	by := rb.Annotations[AnnotationScheduling]
	if by == "" {
		return nil
	}
	m := &v1alpha1.Migration{}
	err := c.reader().Get(ctx, client.ObjectKey{Namespace: rb.Namespace, Name: by}, m)
	if err == nil && !isTerminal(m.Status.Phase) && m.DeletionTimestamp == nil {
		return nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return c.release(ctx, rb, by)
}

// getSecret reads a Secret through c.Secrets, never through the cached
// client, which would need list and watch on every Secret of the cluster.
func (c *Controller) getSecret(ctx context.Context, key client.ObjectKey, s *corev1.Secret) error {
	if c.Secrets == nil {
		return fmt.Errorf("no uncached reader for Secrets configured")
	}
	return c.Secrets.Get(ctx, key, s)
}
