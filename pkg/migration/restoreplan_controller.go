package migration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// RestorePlanReconciler is the only writer of the restore OverridePolicy of
// each protected workload. What it arms follows from what it observes:
//
//   - a running Migration that chose its checkpoints (phase Armed) gets a
//     plan of exactly those, its sources excluded;
//   - any other running Migration owns the plan as it stands (re-arming
//     with a newer checkpoint would re-render the destination while it
//     restores and roll its pods);
//   - otherwise the latest verified checkpoint of each pod of the current
//     template is armed for every cluster that does not run the workload.
type RestorePlanReconciler struct{ *Controller }

func setupRestorePlan(mgr manager.Manager, c *Controller) error {
	return c.policyController(mgr, "stateshift-restoreplan", 0).Complete(RestorePlanReconciler{c})
}

// Reconcile implements reconcile.Reconciler.
func (r RestorePlanReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if wait := r.restorePlanPasses.wait(req.NamespacedName, r.now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.restorePlanPasses.passed(req.NamespacedName, r.now(), r.memberLost(ctx))
	p, workloads, err := r.policyWorkloads(ctx, req)
	if p == nil || err != nil {
		return ctrl.Result{}, err
	}
	// Read once per round: every plan of the policy adds the same Secret.
	pull, err := r.planPullSecret(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Workloads share nothing a plan writes (each has its own
	// OverridePolicy). In a storm every plan of a policy changes at once:
	// one at a time, a policy of a hundred ran out of its reconcile's time.
	errs := make([]error, len(workloads))
	waits := make([]time.Duration, len(workloads))
	deferral := r.roundDeferral(ctx, p) // moves in progress, or a member lost
	eachBounded(len(workloads), r.concurrentSyncs(), func(i int) {
		waits[i], errs[i] = r.planWorkload(ctx, p, workloads[i], pull, deferral)
	})
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, fmt.Errorf("restore plans of %s/%s: %w", p.Namespace, p.Name, err)
	}
	next := interval(p)
	for _, wait := range waits {
		if wait > 0 {
			// Looked at again soon: the moves elsewhere may end before
			// the bound, and their end is no event of this policy.
			next = min(next, wait, rearmRecheck)
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// rearmRecheck is how often a deferred re-arm is looked at again.
const rearmRecheck = 10 * time.Second

// rearmWait is how much longer the re-arm of a workload whose plan
// restores armed (nil: no plan, or its checkpoint is not known) waits, 0
// for now. While other moves run or a member was lost (deferral > 0), a
// plan rewrite is not what any restore waits for, and each one makes
// Karmada re-render the workload's Works while the storm's restores wait
// on the same API server (in the storm of a hundred: 2.3-2.8 plan writes a
// moved workload, for the moved ones' new clusters and for the other
// workloads' checkpoints that completed meanwhile). The armed plan stays
// valid: it restores a verified checkpoint. Until a moved workload's
// destination is excluded its restore is not marked completed (Retain
// marks it then), so a pod re-created there meanwhile restores the same
// checkpoint again rather than starting cold. What waits is
// bounded by when the rewrite became due, as a scheduled checkpoint's
// deferral is: a newer verified checkpoint (newest) is armed at most
// deferral after it completed, and a move (lastRestored) has its
// destination excluded at most deferral after it completed. Anything else
// (and a workload with no plan) is armed at once.
func rearmWait(armed, newest *v1alpha1.Checkpoint, lastRestored *v1alpha1.Migration, deferral time.Duration, now time.Time) time.Duration {
	if armed == nil || armed.Status.CompletionTime == nil || deferral <= 0 {
		return 0
	}
	var due []time.Time
	if newest != nil && newest.Status.CompletionTime != nil && newest.Status.CompletionTime.After(armed.Status.CompletionTime.Time) {
		due = append(due, newest.Status.CompletionTime.Time)
	}
	if lastRestored != nil && lastRestored.Status.CompletionTime != nil && now.Sub(lastRestored.Status.CompletionTime.Time) < deferral {
		due = append(due, lastRestored.Status.CompletionTime.Time)
	}
	if len(due) == 0 {
		return 0
	}
	return max(0, slices.MinFunc(due, time.Time.Compare).Add(deferral).Sub(now))
}

// armedCheckpoint is the checkpoint the workload's plan restores, from
// cps; nil when there is no plan or the checkpoint is not among cps.
func (r RestorePlanReconciler) armedCheckpoint(ctx context.Context, w *workload, cps []v1alpha1.Checkpoint) (*v1alpha1.Checkpoint, error) {
	current, err := r.armedPolicyView(ctx, w)
	if err != nil || current == nil {
		return nil, err
	}
	name := current.Annotations[restoreKey]
	for i := range cps {
		if cps[i].Name == name {
			return &cps[i], nil
		}
	}
	return nil, nil
}

// planWorkload arms (or keeps, or withdraws) one workload's plan; its
// restored pods pull with Secret pull (none when empty). It returns how
// long a deferred re-arm waits (rearmWait).
func (r RestorePlanReconciler) planWorkload(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, pull string, deferral time.Duration) (time.Duration, error) {
	rb, err := r.bindingView(ctx, w) // read only
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ms, err := r.workloadMigrations(ctx, w)
	if err != nil {
		return 0, err
	}
	if active := unfinishedOf(ms); active != nil {
		return 0, r.planMove(ctx, p, w, rb, active, pull)
	}
	cps, err := r.workloadCheckpointsView(ctx, w) // read only
	if err != nil {
		return 0, err
	}
	if deferral > 0 {
		armed, err := r.armedCheckpoint(ctx, w, cps)
		if err != nil {
			return 0, err
		}
		newest := LatestVerified(OfTemplate(cps, w.templateHash))
		if wait := rearmWait(armed, newest, lastRestoredOf(ms), deferral, r.now()); wait > 0 {
			klog.FromContext(ctx).V(2).Info("moves in progress: re-arming waits", "workload", w.label(), "armed", armed.Name, "upTo", wait)
			return wait, nil
		}
	}
	latest := latestByClusterPod(OfTemplate(cps, w.templateHash))
	return 0, r.armPlan(ctx, p, w, rb, GeneralTargets(w.kind(), w.name(), latest), armScope{pullSecret: pull})
}

// planMove arms the plan of a workload a Migration is moving.
func (r RestorePlanReconciler) planMove(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding, active *v1alpha1.Migration, pull string) error {
	if !ownsPlan(active) {
		return nil // the move owns the plan as it stands
	}
	chosen, err := r.checkpointsByName(ctx, w.ns(), active.Status.Checkpoints)
	if err != nil {
		return err
	}
	// The receiver's rule restores them too: the same origin check.
	if chosen, err = trustedCheckpoints(ctx, r.Controller, p, chosen); err != nil {
		return err
	}
	receiver, err := receiverRules(w, active, chosen, pull)
	if err != nil {
		r.Recorder.Eventf(p, "Warning", "InvalidPlan", "cannot build the restore plan of %s for its receiving cluster: %v", w.label(), err)
	}
	scope := armScope{sources: active.Status.SourceClusters, receivers: receiver, pullSecret: pull}
	return r.armPlan(ctx, p, w, rb, GeneralTargets(w.kind(), w.name(), chosen), scope)
}

// armScope is what a plan carries besides its checkpoints.
type armScope struct {
	// sources are a move's source clusters: never rewritten.
	sources []string
	// receivers are the rules of clusters that receive moved replicas.
	receivers []policyv1alpha1.RuleWithCluster
	// pullSecret is the Secret the restored pods pull with (planPullSecret).
	pullSecret string
}

// ownsPlan says whether the running Migration m decides the plan: once it
// chose its checkpoints (Armed), and while it restores replicas into a
// cluster that already runs others (the receiver's rule follows the
// binding). Any other running Migration keeps the plan as it stands
// (re-arming with a newer checkpoint would re-render the destination while
// it restores and roll its pods).
func ownsPlan(m *v1alpha1.Migration) bool {
	switch m.Status.Phase {
	case v1alpha1.MigrationArmed:
		return len(m.Status.Checkpoints) > 0
	case v1alpha1.MigrationRestoring:
		cluster, _ := receiverOf(m)
		return cluster != ""
	}
	return false
}

// receiverRules is the override rule restoring the moved replicas into the
// new pods of a cluster that already runs others, none when the move has
// no such cluster.
func receiverRules(w *workload, m *v1alpha1.Migration, chosen map[PodKey]*v1alpha1.Checkpoint, pull string) ([]policyv1alpha1.RuleWithCluster, error) {
	cluster, assigned := receiverOf(m)
	if cluster == "" {
		return nil, nil
	}
	kept, err := keptPods(assigned)
	if err != nil {
		return nil, err
	}
	plan, err := BuildPlan(w.kind(), ReceiverTargets(assigned, chosen))
	if err != nil {
		return nil, err
	}
	plan.KeepPods, plan.TemplateGeneration, plan.PullSecret = kept, w.obj.GetGeneration(), pull
	tmpl, err := w.template()
	if err != nil {
		return nil, err
	}
	rule, err := restore.ReceiverRule(tmpl, plan, cluster)
	if err != nil {
		return nil, err
	}
	return []policyv1alpha1.RuleWithCluster{rule}, nil
}

// armPlan builds the plan from latest (target pod -> checkpoint) and arms
// it for every cluster but those running the workload, the sources and the
// clusters that cannot restore, plus the receiver rules; with nothing to
// arm, or nowhere to exclude, it withdraws it.
func (r RestorePlanReconciler) armPlan(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, rb *workv1alpha2.ResourceBinding, latest map[string]*v1alpha1.Checkpoint, scope armScope) error {
	latest, err := trustedCheckpoints(ctx, r.Controller, p, latest) // image_trust.go
	if err != nil {
		return err
	}
	if len(latest) == 0 {
		return r.arm(ctx, p, w, nil, nil, nil)
	}
	plan, err := BuildPlan(w.kind(), latest)
	if err != nil {
		r.Recorder.Eventf(p, "Warning", "InvalidPlan", "cannot build the restore plan of %s: %v", w.label(), err)
		return r.arm(ctx, p, w, nil, nil, nil)
	}
	plan.TemplateGeneration, plan.PullSecret = w.obj.GetGeneration(), scope.pullSecret
	exclude, err := r.exclusions(ctx, w, rb)
	if err != nil {
		return err
	}
	for _, s := range scope.sources { // the sources are never rewritten
		exclude = appendUnique(exclude, s)
	}
	return r.arm(ctx, p, w, &plan, exclude, scope.receivers)
}

// exclusions are the clusters the plan must not rewrite (ExcludeClusters).
func (c *Controller) exclusions(ctx context.Context, w *workload, rb *workv1alpha2.ResourceBinding) ([]string, error) {
	current, err := c.armedPolicyView(ctx, w)
	if err != nil {
		return nil, err
	}
	unable, err := c.unableClusters(ctx)
	if err != nil {
		return nil, err
	}
	return ExcludeClusters(BoundClusters(rb), SettledClusters(rb), excluded(current), unable), nil
}

// checkpointsByName reads the Checkpoints a Migration chose, by cluster
// and pod. A Migration chooses verified Checkpoints (readVerified: read
// live every time, a storm's plans cost Karmada's API server ~3 GETs a
// moved workload, re-read at every reconcile of the policy).
func (c *Controller) checkpointsByName(ctx context.Context, ns string, chosen []v1alpha1.MigrationCheckpoint) (map[PodKey]*v1alpha1.Checkpoint, error) {
	out := map[PodKey]*v1alpha1.Checkpoint{}
	for _, mc := range chosen {
		cp := &v1alpha1.Checkpoint{}
		if err := c.readVerified(ctx, types.NamespacedName{Namespace: ns, Name: mc.Name}, cp); err != nil {
			return nil, fmt.Errorf("checkpoint %s of the move: %w", mc.Name, err)
		}
		out[PodKey{Cluster: mc.Cluster, Pod: mc.Pod}] = cp
	}
	return out, nil
}
