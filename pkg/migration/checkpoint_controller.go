package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// CheckpointReconciler is the only writer of Checkpoints, of the
// PropagationPolicies that carry them and the pull Secrets to members, and
// of the CheckpointPolicy status: for each workload a policy selects it
// takes the scheduled checkpoints, the fresh ones a Migration waits for,
// and applies retention; the status reports what it observes (the armed
// plan included, which the restoreplan controller writes).
type CheckpointReconciler struct {
	*Controller
	// deferral is how long this round lets due scheduled checkpoints wait
	// for the moves in progress (roundDeferral); set on the Reconcile's
	// own copy of the reconciler.
	deferral time.Duration
	// retainNow says whether this round runs retention (retentionDue).
	retainNow bool
}

func setupCheckpoints(mgr manager.Manager, c *Controller) error {
	if err := setupCheckpointImages(mgr, c); err != nil {
		return err
	}
	return c.policyController(mgr, "stateshift-checkpoints", policyBatch).Complete(CheckpointReconciler{Controller: c})
}

// MinInterval is the shortest schedule the controller runs, whatever the
// CRD let through.
const MinInterval = 5 * time.Second

func interval(p *v1alpha1.CheckpointPolicy) time.Duration {
	return max(p.Spec.Schedule.Interval.Duration, MinInterval)
}

// Reconcile implements reconcile.Reconciler.
func (r CheckpointReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if wait := r.checkpointPasses.wait(req.NamespacedName, r.now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.checkpointPasses.passed(req.NamespacedName, r.now(), r.memberLost(ctx))
	p, workloads, err := r.policyWorkloads(ctx, req)
	if p == nil || err != nil {
		return ctrl.Result{}, err
	}
	// A copy: SetStatusCondition changes a condition in place, and a
	// shared slice would make the changed status equal the old one
	// (writeStatus would skip the write).
	status := v1alpha1.CheckpointPolicyStatus{ObservedGeneration: p.Generation, Conditions: append([]metav1.Condition(nil), p.Status.Conditions...)}
	next := interval(p)
	r.deferral = r.roundDeferral(ctx, p)
	r.retainNow = r.retentionDue(p)
	var errs []error
	for _, o := range r.protectAll(withRepositoryVerdict(ctx), p, workloads) {
		if o.err != nil {
			errs = append(errs, o.err)
			o.pw.Message = o.err.Error()
			markProtected(p, &o.pw, nil, r.now(), o.err)
		}
		next = min(next, max(o.wait, time.Second))
		status.Workloads = append(status.Workloads, o.pw)
	}
	if err := r.pruneDeletedWorkloads(ctx, p); err != nil {
		errs = append(errs, err)
	}
	if err := r.reportPullSecret(ctx, p, &status); err != nil {
		errs = append(errs, err)
	}
	wait, err := r.writeStatus(ctx, p, status, errs)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait > 0 {
		next = min(next, wait)
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// stormStatusSpacing is the least time between two status writes of a
// CheckpointPolicy while moves run or a member was lost (a storm): its
// status lists every workload of the policy (tens of KiB for a hundred),
// and a storm changes a workload at a time; each write cost Karmada's API
// server a second and more to answer in a storm of a hundred, while the
// restores waited on the same cores. A Ready condition that changes is
// written at once.
const stormStatusSpacing = 15 * time.Second

// statusSpacingPerWorkload spaces a policy's status writes outside storms
// by its size: a round changes its workloads one at a time as their
// checkpoints complete, and written at each change a policy of n workloads
// cost n writes of n entries a round (0.5 writes a checkpoint of about
// 400 ms each in a 1,000-workload round). Spaced by this much a workload,
// up to stormStatusSpacing, a round's status writes cost about the same
// per workload whatever the policy's size, and a policy of a few workloads
// is written at once.
const statusSpacingPerWorkload = 150 * time.Millisecond

// statusWait is how much longer p's new status waits (0: write now).
func (r CheckpointReconciler) statusWait(p *v1alpha1.CheckpointPolicy, status v1alpha1.CheckpointPolicyStatus) time.Duration {
	spacing := min(stormStatusSpacing, time.Duration(len(status.Workloads))*statusSpacingPerWorkload)
	if r.deferral > 0 {
		spacing = stormStatusSpacing
	}
	last, ok := r.policyStatusWrites.Load(p.UID)
	if !ok || spacing == 0 {
		return 0
	}
	was := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
	now := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if was == nil || now == nil || was.Status != now.Status {
		return 0
	}
	return max(0, last.(time.Time).Add(spacing).Sub(r.now()))
}

// writeStatus counts the workloads, sets Ready and writes the status, or
// says how long the write waits (statusWait).
func (r CheckpointReconciler) writeStatus(ctx context.Context, p *v1alpha1.CheckpointPolicy, status v1alpha1.CheckpointPolicyStatus, errs []error) (time.Duration, error) {
	for _, pw := range status.Workloads {
		status.ProtectedWorkloads++
		if pw.Armed {
			status.ArmedWorkloads++
		}
	}
	summarize(&status)
	cond := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Protecting", ObservedGeneration: p.Generation,
		Message: fmt.Sprintf("%d workloads protected, %d armed", status.ProtectedWorkloads, status.ArmedWorkloads)}
	if len(errs) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Error", errs[0].Error()
		klog.FromContext(ctx).Error(errs[0], "protect", "policy", klog.KObj(p), "errors", len(errs))
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	if equality.Semantic.DeepEqual(p.Status, status) {
		return 0, nil // most rounds change one workload of many: no write
	}
	if wait := r.statusWait(p, status); wait > 0 {
		return wait, nil
	}
	p.Status = status
	if err := r.Client.Status().Update(ctx, p); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	r.policyStatusWrites.Store(p.UID, r.now())
	return 0, nil
}

// retentionDue says whether this round of p runs retention: always
// outside a storm (moves in progress or a member lost, as for scheduled
// checkpoints); in one, once every deferral. No restore needs retention's
// deletes, and in a failover storm each moved workload's older checkpoints
// on the lost member went at once: a delete, a finalizer patch and a read
// of Karmada's API server and a registry delete each, while the restores
// waited on the same API server. So a storm's deletes wait until it ends,
// or the deferral at most: a storm that lasts (a move that waits for
// hours) does not keep memory dumps past the policy's keep longer than
// that.
func (r CheckpointReconciler) retentionDue(p *v1alpha1.CheckpointPolicy) bool {
	now := r.now()
	if last, ok := r.retentionRuns.Load(p.UID); ok && r.deferral > 0 && now.Sub(last.(time.Time)) < r.deferral {
		return false
	}
	r.retentionRuns.Store(p.UID, now)
	return true
}

// protect runs one round for one workload and says when to look again.
func (r CheckpointReconciler) protect(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload) (v1alpha1.ProtectedWorkload, time.Duration, error) {
	pw := v1alpha1.ProtectedWorkload{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()}
	rb, err := r.bindingView(ctx, w) // read only
	if apierrors.IsNotFound(err) {
		pw.Message = "no ResourceBinding yet: the workload is not propagated"
		markProtected(p, &pw, nil, r.now(), nil)
		return pw, 0, nil
	}
	if err != nil {
		return pw, 0, err
	}
	ms, err := r.workloadMigrations(ctx, w)
	if err != nil {
		return pw, 0, err
	}
	active := unfinishedOf(ms)
	all, err := r.listWorkloadCheckpoints(ctx, w)
	if err != nil {
		return pw, 0, err
	}
	pw.Clusters = BoundClusters(rb)
	if len(pw.Clusters) == 0 {
		// Mid-move: an eviction takes the source out of the binding before
		// the scheduler adds the destination. The Checkpoints say where it ran.
		pw.Clusters = LeftClusters(nil, all, time.Time{})
	}
	running, err := r.runningPods(ctx, w, pw.Clusters)
	if err != nil {
		return pw, 0, err
	}
	cps := all
	if r.retainNow {
		if cps, err = r.retain(ctx, p, w, []*v1alpha1.Migration{active, lastRestoredOf(ms)}, all, runningKeys(running)); err != nil {
			return pw, 0, err
		}
		r.deleteFinishedStrays(ctx, cps)
	}
	if err := r.freshForMigration(ctx, p, w, active); err != nil {
		return pw, 0, err
	}
	wait, err := r.scheduled(ctx, p, w, running, cps, &pw)
	if err != nil {
		return pw, wait, err
	}
	if err := r.reportPlan(ctx, w, cps, active, &pw); err != nil {
		return pw, wait, err
	}
	markProtected(p, &pw, OfTemplate(cps, w.templateHash), r.now(), nil)
	return pw, wait, nil
}

// protected is one workload's outcome of a round.
type protected struct {
	pw   v1alpha1.ProtectedWorkload
	wait time.Duration
	err  error
}

// protectAll runs protect for every workload, concurrentSyncs at a time,
// and returns the outcomes in the workloads' order. Workloads share
// nothing a round writes (each has its own Checkpoints and images), and
// the calls of one mostly wait on API servers and registries.
func (r CheckpointReconciler) protectAll(ctx context.Context, p *v1alpha1.CheckpointPolicy, workloads []*workload) []protected {
	out := make([]protected, len(workloads))
	eachBounded(len(workloads), r.concurrentSyncs(), func(i int) {
		pw, wait, err := r.protect(ctx, p, workloads[i])
		out[i] = protected{pw: pw, wait: wait, err: err}
	})
	return out
}

// scheduled takes a checkpoint of every running pod of the current
// template whose last one is an interval old, and lists the pods with
// their latest verified checkpoint (keyed by cluster and pod).
func (r CheckpointReconciler) scheduled(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, running map[string][]corev1.Pod, cps []v1alpha1.Checkpoint, pw *v1alpha1.ProtectedWorkload) (time.Duration, error) {
	current := OfTemplate(cps, w.templateHash)
	// The images the template names, as computed once per template
	// version: converting the whole template here, for every workload at
	// every reconcile, was a ninth of the controller's CPU in a round.
	var images map[string]string
	if err := json.Unmarshal([]byte(w.templateImages), &images); err != nil {
		return 0, fmt.Errorf("%s %s/%s: template images: %w", w.kind(), w.ns(), w.name(), err)
	}
	wait := interval(p)
	for _, cluster := range sortedKeys(running) {
		for _, pod := range running[cluster] {
			mine := ofPod(onCluster(current, cluster), pod.Name)
			pw.Pods = append(pw.Pods, podRef(cluster, pod.Name, LatestVerified(mine)))
			if !podRunsImages(&pod, images) {
				continue // an old pod of a rollout: its state is not the new template's
			}
			last := append(mine, restoredFrom(&pod, current)...)
			if due := Due(last, interval(p), r.now()); due > 0 {
				wait = min(wait, due)
				continue
			}
			if left := deferredFor(last, interval(p), r.deferral, r.now()); left > 0 {
				checkpointDeferrals.Inc()
				wait = min(wait, left)
				continue
			}
			if _, err := r.createCheckpoint(ctx, p, w, cluster, &pod, ""); err != nil {
				return wait, err
			}
		}
	}
	return wait, nil
}

// restoredFrom is the verified Checkpoint among cps whose images pod runs
// (none for a pod that started from its own image). Such a pod resumed
// that Checkpoint's state, so its first scheduled checkpoint is due an
// interval after it rather than at once: a checkpoint right after a move
// froze the process that had just resumed, for as long as its dump takes,
// only to upload again the state it was restored from.
func restoredFrom(pod *corev1.Pod, cps []v1alpha1.Checkpoint) []v1alpha1.Checkpoint {
	runs := map[string]string{}
	for _, c := range pod.Spec.Containers {
		runs[c.Name] = c.Image
	}
	for i := range cps {
		cp := &cps[i]
		if cp.Status.Phase != v1alpha1.CheckpointSucceeded || len(cp.Status.Containers) == 0 {
			continue
		}
		if reflect.DeepEqual(images(cp), pick(runs, images(cp))) {
			return []v1alpha1.Checkpoint{*cp}
		}
	}
	return nil
}

// pick is the entries of m whose keys are in keys.
func pick(m, keys map[string]string) map[string]string {
	out := make(map[string]string, len(keys))
	for k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func podRef(cluster, pod string, l *v1alpha1.Checkpoint) v1alpha1.PodCheckpointRef {
	ref := v1alpha1.PodCheckpointRef{Pod: pod, Cluster: cluster}
	if l != nil {
		ref.Checkpoint, ref.Images, ref.CompletionTime = l.Name, images(l), l.Status.CompletionTime
	}
	return ref
}

// freshForMigration creates the fresh Checkpoints a planned Migration
// (Checkpointing, not held) waits for: one per running pod on its sources.
func (r CheckpointReconciler) freshForMigration(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, m *v1alpha1.Migration) error {
	if m == nil || m.Status.Phase != v1alpha1.MigrationCheckpointing || isHeld(m) {
		return nil
	}
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
			if _, err := r.createCheckpoint(ctx, p, w, cluster, &pod, m.Name); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		r.Recorder.Eventf(m, "Warning", "NoPodToCheckpoint", "no running pod of %s on %v to checkpoint", w.label(), m.Status.SourceClusters)
	}
	return nil
}

// reportPlan fills the status's view of the armed plan (written by the
// restoreplan controller) and says why it is not armed.
func (r CheckpointReconciler) reportPlan(ctx context.Context, w *workload, cps []v1alpha1.Checkpoint, active *v1alpha1.Migration, pw *v1alpha1.ProtectedWorkload) error {
	op, err := r.armedPolicyView(ctx, w)
	if err != nil {
		return err
	}
	if op != nil {
		pw.Armed, pw.ArmedCheckpoint = true, op.Annotations[restoreKey]
	}
	current := LatestVerified(OfTemplate(cps, w.templateHash))
	switch {
	case active != nil:
		pw.Message = fmt.Sprintf("Migration %s is %s: the restore plan stays as it armed it until the move ends", active.Name, active.Status.Phase)
	case op != nil:
	case current == nil && LatestVerified(cps) != nil:
		pw.Message = "the pod template changed since the last verified checkpoint: " +
			"waiting for a checkpoint of the new template (a move now starts cold rather than restore the old version)"
	case current == nil:
		pw.Message = "no verified checkpoint yet: a move now would start cold"
	default:
		pw.Message = "no cluster runs the workload healthy yet: not armed (the plan would rewrite the source)"
	}
	return nil
}

// runningPods lists the workload's running pods on each cluster.
func (c *Controller) runningPods(ctx context.Context, w *workload, clusters []string) (map[string][]corev1.Pod, error) {
	out := map[string][]corev1.Pod{}
	for _, cluster := range clusters {
		pods, err := c.Pods.Pods(ctx, cluster, w.ns(), w.selector)
		if err != nil {
			return nil, err
		}
		out[cluster] = runningPods(pods)
	}
	return out, nil
}

// runningKeys are the "<cluster>/<pod>" keys of running pods.
func runningKeys(running map[string][]corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for cluster, pods := range running {
		for _, pod := range pods {
			out[cluster+"/"+pod.Name] = true
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
