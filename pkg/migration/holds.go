package migration

import (
	"context"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// HoldReconciler (part of the migrations controller, the only writer of
// holds) lifts a scheduling hold whose Migration is gone or finished:
// deleting a held Migration is how a person releases the move, and a hold
// must never outlive its Migration.
type HoldReconciler struct{ *Controller }

// Reconcile implements reconcile.Reconciler.
func (r HoldReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rb := &workv1alpha2.ResourceBinding{}
	if err := r.Client.Get(ctx, req.NamespacedName, rb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	by := rb.Annotations[AnnotationScheduling]
	if by == "" {
		return ctrl.Result{}, nil
	}
	m := &v1alpha1.Migration{}
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: rb.Namespace, Name: by}, m)
	if err == nil && !isTerminal(m.Status.Phase) && m.DeletionTimestamp == nil {
		return ctrl.Result{}, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.release(ctx, rb, by)
}

// heldByStateshift selects the bindings stateshift holds.
func heldByStateshift(o client.Object) bool { return o.GetAnnotations()[AnnotationScheduling] != "" }

// bindingOfMigration enqueues the binding of a Migration's workload (its
// end or deletion may release a hold).
func bindingOfMigration(_ context.Context, o client.Object) []reconcile.Request {
	m, ok := o.(*v1alpha1.Migration)
	if !ok {
		return nil
	}
	name := BindingName(m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name)
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: name}}}
}
