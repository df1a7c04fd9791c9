package migration

import (
	"context"
	"fmt"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// MigrationReconciler drives one Migration through its phases. It is the
// only writer of Migration status and of the binding's scheduling hold and
// placement (and of the restore=false mark on a cluster whose pods failed
// to restore):
//
//	Manual, Cordon:  Checkpointing (scheduling held; the checkpoints controller
//	                 takes the fresh checkpoint) -> Armed (checkpoints chosen; once
//	                 the restoreplan controller armed them, hold lifted / placement
//	                 moved) -> Restoring -> Restored
//	detected moves:  Restoring (the armed plan restores the destination) -> Restored
//
// and FellBack when no restore is possible (ColdStart), Failed on errors
// it cannot recover from and for a move that does not happen. Every phase
// has a deadline (spec.phaseTimeout).
type MigrationReconciler struct{ *Controller }

// move is what one round of a Migration works on.
type move struct {
	m  *v1alpha1.Migration
	p  *v1alpha1.CheckpointPolicy
	w  *workload
	rb *workv1alpha2.ResourceBinding
}

const poll = 2 * time.Second

func setupMigrations(mgr manager.Manager, c *Controller) error {
	unfinished := handler.EnqueueRequestsFromMapFunc(c.unfinishedMigrationsInNamespace)
	b := ctrl.NewControllerManagedBy(mgr).Named("stateshift-migration").WithOptions(c.bounded()).
		For(&v1alpha1.Migration{}).
		Watches(&v1alpha1.Checkpoint{}, unfinished).
		Watches(&workv1alpha2.ResourceBinding{}, unfinished).
		Watches(&policyv1alpha1.OverridePolicy{}, unfinished)
	if c.Options.WatchClusters {
		// An uncordon decides whether a Cordon Migration still has a move
		// to make. Spec and label changes only: a Cluster's status is
		// rewritten every few seconds.
		b = b.Watches(&clusterv1alpha1.Cluster{}, handler.EnqueueRequestsFromMapFunc(c.unfinishedCordonMigrations),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})))
	}
	if err := b.Complete(MigrationReconciler{c}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-holds").WithOptions(c.bounded()).
		For(&workv1alpha2.ResourceBinding{}, builder.WithPredicates(predicate.NewPredicateFuncs(heldByStateshift))).
		Watches(&v1alpha1.Migration{}, handler.EnqueueRequestsFromMapFunc(bindingOfMigration)).
		Complete(HoldReconciler{c})
}

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
	setReady(m)
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

// step reads what the Migration is about and runs its phase.
func (r MigrationReconciler) step(ctx context.Context, m *v1alpha1.Migration) (ctrl.Result, error) {
	mv, err := r.observe(ctx, m)
	if mv == nil || err != nil {
		return ctrl.Result{}, err
	}
	if left := r.deadlineLeft(m); left <= 0 {
		return r.deadlineExceeded(ctx, mv)
	}
	switch m.Status.Phase {
	case "", v1alpha1.MigrationPending:
		return r.start(ctx, mv)
	case v1alpha1.MigrationCheckpointing:
		return r.checkpointing(ctx, mv)
	case v1alpha1.MigrationArmed:
		return r.armed(ctx, mv)
	case v1alpha1.MigrationRestoring:
		return r.restoring(ctx, mv)
	}
	return ctrl.Result{}, nil
}

// observe reads the workload, its policy and binding; a Migration about
// none of them ends Failed (mv nil, no error).
func (r MigrationReconciler) observe(ctx context.Context, m *v1alpha1.Migration) (*move, error) {
	ref := m.Spec.WorkloadRef
	w, err := r.getWorkload(ctx, m.Namespace, ref.Kind, ref.Name)
	if apierrors.IsNotFound(err) {
		return nil, r.fail(m, "WorkloadNotFound", fmt.Sprintf("%s %s/%s does not exist", ref.Kind, m.Namespace, ref.Name))
	}
	if err != nil {
		return nil, err
	}
	p, err := r.policyFor(ctx, w)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, r.fail(m, "NotProtected", fmt.Sprintf("no CheckpointPolicy in %s selects %s %s", m.Namespace, ref.Kind, ref.Name))
	}
	rb, err := r.binding(ctx, w)
	if apierrors.IsNotFound(err) {
		return nil, r.fail(m, "NotPropagated", fmt.Sprintf("%s %s/%s has no ResourceBinding", ref.Kind, m.Namespace, ref.Name))
	}
	if err != nil {
		return nil, err
	}
	return &move{m: m, p: p, w: w, rb: rb}, nil
}

func equalStatus(a, b *v1alpha1.MigrationStatus) bool {
	return a.Phase == b.Phase && a.Message == b.Message && a.DestinationCluster == b.DestinationCluster &&
		len(a.Conditions) == len(b.Conditions) && equality.Semantic.DeepEqual(a.Checkpoints, b.Checkpoints) &&
		equality.Semantic.DeepEqual(a.SourceClusters, b.SourceClusters) && equality.Semantic.DeepEqual(a.StartReplicas, b.StartReplicas) &&
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
func (r MigrationReconciler) fail(m *v1alpha1.Migration, reason, msg string) error {
	_ = r.set(m, v1alpha1.MigrationFailed, msg)
	r.condition(m, v1alpha1.ConditionRestored, false, reason, msg)
	r.Recorder.Eventf(m, corev1.EventTypeWarning, reason, "%s", msg)
	return nil
}

// isHeld says whether the Migration holds its move (onRestoreImpossible=Hold).
func isHeld(m *v1alpha1.Migration) bool {
	c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionFellBack)
	return c != nil && c.Reason == "Held"
}
