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
// holds) lifts a scheduling hold, and the deletion suppression of the
// sources a person's move keeps, once their Migration is gone or
// finished: deleting a held Migration is how a person releases the move,
// and neither may outlive its Migration.
type HoldReconciler struct{ *Controller }

// Reconcile implements reconcile.Reconciler.
func (r HoldReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rb := &workv1alpha2.ResourceBinding{}
	if err := r.Client.Get(ctx, req.NamespacedName, rb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if by := rb.Annotations[AnnotationScheduling]; by != "" {
		if over, err := r.migrationOver(ctx, rb.Namespace, by); err != nil || !over {
			return ctrl.Result{}, err
		}
		if err := r.release(ctx, rb, by); err != nil {
			return ctrl.Result{}, err
		}
	}
	for _, by := range keptSources(rb) {
		if over, err := r.migrationOver(ctx, rb.Namespace, by); err != nil || !over {
			return ctrl.Result{}, err
		}
		if err := r.releaseSources(ctx, rb, by); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// migrationOver says whether the Migration is gone, going or finished.
func (r HoldReconciler) migrationOver(ctx context.Context, ns, name string) (bool, error) {
	m := &v1alpha1.Migration{}
	err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return err == nil && (isTerminal(m.Status.Phase) || m.DeletionTimestamp != nil), err
}

// heldByStateshift selects the bindings stateshift holds or keeps sources of.
func heldByStateshift(o client.Object) bool {
	rb, ok := o.(*workv1alpha2.ResourceBinding)
	return ok && (rb.Annotations[AnnotationScheduling] != "" || len(keptSources(rb)) > 0)
}

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
