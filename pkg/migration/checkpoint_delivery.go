package migration

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// CheckpointDeliveryReconciler delivers Checkpoints to their member without
// Karmada's propagation (--checkpoint-delivery=proxy). The Checkpoint in
// the Karmada API stays the record the other controllers read; this
// controller is the only writer of its member's copy (created, and
// deleted once the record goes) and of the record's status, mirrored from
// the copy as Karmada's reflection would show it. Why: a propagated
// Checkpoint costs Karmada a binding, a Work, their status writes and
// interpreter calls, about half of all the CPU a checkpoint costs a
// federation; a write and a watch through the cluster proxy cost a tenth
// of Karmada's share (docs/design-controller.md).
type CheckpointDeliveryReconciler struct{ *Controller }

func (c *Controller) deliversByProxy() bool { return c.Options.CheckpointDelivery == DeliveryProxy }

func setupCheckpointDelivery(mgr manager.Manager, c *Controller) error {
	if !c.deliversByProxy() {
		return nil
	}
	if err := setupCopySweep(mgr, c); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-checkpointdelivery").WithOptions(c.bounded()).
		For(&v1alpha1.Checkpoint{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[LabelDelivery] == DeliveryProxy
		}))).
		WatchesRawSource(source.Channel(c.Options.Members.changes, &handler.EnqueueRequestForObject{})).
		Complete(CheckpointDeliveryReconciler{c})
}

// delivered says whether this controller delivers rec: stateshift made it
// (only stateshift's identities may, artifacts/security) for proxy
// delivery, and it names its cluster.
func delivered(rec *v1alpha1.Checkpoint) bool {
	l := rec.Labels
	return l[LabelDelivery] == DeliveryProxy && l[LabelManagedBy] == ManagedBy && l[LabelCluster] != ""
}

// Reconcile implements reconcile.Reconciler for a record and its copies.
func (r CheckpointDeliveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rec := &v1alpha1.Checkpoint{}
	if err := r.Client.Get(ctx, req.NamespacedName, rec); apierrors.IsNotFound(err) {
		rec = nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	// A record the cache shows leaving (or not delivered by us) has no
	// copy to keep; one the cache lacks is read live before its copies go.
	seen := rec != nil
	if seen && (!delivered(rec) || rec.DeletionTimestamp != nil) {
		rec = nil
	}
	// A stale copy in a lost member waits: the record is looked at again.
	var again ctrl.Result
	waiting, err := r.deleteStaleCopies(ctx, req.NamespacedName, rec, seen)
	if waiting {
		again.RequeueAfter = lostClusterRecheck
	}
	if err != nil || rec == nil {
		return again, err
	}
	if lost, err := r.clusterLost(ctx, rec.Labels[LabelCluster]); err != nil || lost {
		// Asked again later: a lost member's watch cannot answer, and a
		// first look would wait its sync timeout in a worker.
		return ctrl.Result{RequeueAfter: lostClusterRecheck}, err
	}
	return again, r.deliver(ctx, rec)
}

// lostClusterRecheck is how often a record of a lost member is looked at.
const lostClusterRecheck = 30 * time.Second

// clusterLost says whether Karmada reports cluster not Ready (False or
// Unknown). One that never reported (joining) is not lost.
func (r CheckpointDeliveryReconciler) clusterLost(ctx context.Context, cluster string) (bool, error) {
	cl := &clusterv1alpha1.Cluster{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: cluster}, cl); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return notReady(cl), nil
}

// notReady says whether Karmada reports cl not Ready (False or Unknown).
func notReady(cl *clusterv1alpha1.Cluster) bool {
	ready := meta.FindStatusCondition(cl.Status.Conditions, clusterv1alpha1.ClusterConditionReady)
	return ready != nil && ready.Status != metav1.ConditionTrue
}

// deleteStaleCopies deletes the copies named key that are not rec's (nil:
// none is): in another cluster, of an earlier record of the name, or of a
// record that is gone. Unless the cache has seen the record (leaving: a
// deletion is never undone), it is read from the API before its copy
// goes: the cache may not show a record just created. A copy in a member
// Karmada reports lost, or whose watch is broken (Karmada notices a lost
// member only after its grace period), is left until the member is back:
// every try meanwhile would read the record live and fail at the proxy,
// retried with backoff (3-4 live reads a moved workload in the storms),
// while the restores wait on the same API server. It says whether such a
// copy is waiting (the caller looks again in lostClusterRecheck).
func (r CheckpointDeliveryReconciler) deleteStaleCopies(ctx context.Context, key types.NamespacedName, rec *v1alpha1.Checkpoint, seen bool) (bool, error) {
	var errs []error
	waiting := false
	for cluster, cp := range r.Options.Members.Copies(key.Namespace, key.Name) {
		if rec != nil && isCopyOf(cp, cluster, rec) {
			continue
		}
		lost, err := r.clusterLost(ctx, cluster)
		if lost = lost || r.Options.Members.Unreachable(cluster, key.Namespace); err != nil || lost {
			errs = append(errs, err)
			waiting = waiting || lost
			continue
		}
		if !seen {
			live := &v1alpha1.Checkpoint{}
			err := r.reader().Get(ctx, key, live)
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
			if err == nil && delivered(live) && live.DeletionTimestamp == nil && isCopyOf(cp, cluster, live) {
				continue
			}
		}
		errs = append(errs, countDelivery("delete", r.Options.Members.Delete(ctx, cluster, key.Namespace, key.Name, cp.UID)))
	}
	return waiting, errors.Join(errs...)
}

func isCopyOf(cp *v1alpha1.Checkpoint, cluster string, rec *v1alpha1.Checkpoint) bool {
	return cluster == rec.Labels[LabelCluster] && cp.Labels[LabelRecordUID] == string(rec.UID)
}

// deliver creates rec's copy in its cluster, or mirrors the copy's status.
// A finished record is not delivered again: its result is in, and a copy
// deleted since (by a person, by a member's cleanup) is not made anew.
func (r CheckpointDeliveryReconciler) deliver(ctx context.Context, rec *v1alpha1.Checkpoint) error {
	if rec.IsFinished() {
		return nil
	}
	cluster := rec.Labels[LabelCluster]
	cp, err := r.Options.Members.Get(ctx, cluster, rec.Namespace, rec.Name)
	if err != nil {
		return err
	}
	if cp == nil {
		return countDelivery("create", r.Options.Members.Create(ctx, cluster, memberCopy(rec)))
	}
	if !isCopyOf(cp, cluster, rec) {
		return nil // deleteStaleCopies deletes it; its delete event brings the record back
	}
	want, ok := mirroredStatus(cluster, cp.Status, rec.Status)
	if !ok || equality.Semantic.DeepEqual(rec.Status, want) {
		return nil
	}
	rec.Status = want
	return countDelivery("status", r.Client.Status().Update(ctx, rec))
}

// memberCopy is what the member gets of rec: its spec, labels and
// annotations, and the record's UID.
func memberCopy(rec *v1alpha1.Checkpoint) *v1alpha1.Checkpoint {
	labels := maps.Clone(rec.Labels)
	labels[LabelRecordUID] = string(rec.UID)
	return &v1alpha1.Checkpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.CheckpointKind},
		ObjectMeta: metav1.ObjectMeta{Name: rec.Name, Namespace: rec.Namespace, Labels: labels, Annotations: maps.Clone(rec.Annotations)},
		Spec:       *rec.Spec.DeepCopy(),
	}
}

// mirroredStatus is the record's status for its member copy's (false:
// nothing to write), as Karmada's reflection and aggregation show a
// propagated one (pkg/interpreter), the message naming cluster and node:
// nothing before the agent wrote anything; a running attempt as its claim
// (its stages stay on the member: each would be a write to the Karmada
// API), and only over a Pending status the record would otherwise keep
// showing, since nothing in the controller reads a claim: an attempt that
// starts at once costs one write, its result.
func mirroredStatus(cluster string, s, shown v1alpha1.CheckpointStatus) (v1alpha1.CheckpointStatus, bool) {
	if equality.Semantic.DeepEqual(s, v1alpha1.CheckpointStatus{}) {
		return s, false
	}
	if s.IsRunning() {
		if shown.Phase != v1alpha1.CheckpointPending {
			return s, false
		}
		s = s.Claim()
	}
	return s.ReportedBy(cluster), true
}

// CopySweepReconciler looks once per member cluster, when it is first seen
// reachable, for copies in namespaces where no record is left (records
// deleted while no controller ran), and has them watched so they are
// deleted like any stale copy. Copies in namespaces with records need no
// sweep: their watch's first list enqueues them.
type CopySweepReconciler struct {
	*Controller
	mu    sync.Mutex
	swept map[string]bool
}

func setupCopySweep(mgr manager.Manager, c *Controller) error {
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-copysweep").WithOptions(c.bounded()).
		For(&clusterv1alpha1.Cluster{}).
		Complete(&CopySweepReconciler{Controller: c, swept: map[string]bool{}})
}

// Reconcile implements reconcile.Reconciler for a member cluster.
func (r *CopySweepReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.mu.Lock()
	done := r.swept[req.Name]
	r.mu.Unlock()
	if done {
		return ctrl.Result{}, nil
	}
	cl := &clusterv1alpha1.Cluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, cl); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if notReady(cl) {
		return ctrl.Result{RequeueAfter: lostClusterRecheck}, nil
	}
	n, err := r.Options.Members.WatchNamespacesWithCopies(ctx, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	r.swept[req.Name] = true
	r.mu.Unlock()
	log.FromContext(ctx).V(1).Info("Watching every namespace with delivered Checkpoints", "cluster", req.Name, "namespaces", n)
	return ctrl.Result{}, nil
}
