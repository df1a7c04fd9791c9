package migration

import (
	"context"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// policyController starts a controller keyed by CheckpointPolicy that
// looks again whenever something its workloads' decisions depend on
// changes: their Checkpoints, Migrations, bindings and templates. With
// batch > 0 the Checkpoint and binding events wait that long (batched).
func (c *Controller) policyController(mgr manager.Manager, name string, batch time.Duration) *builder.Builder {
	return c.policyControllerWithout(mgr, name, batch).
		Watches(&v1alpha1.Checkpoint{}, batched(handler.EnqueueRequestsFromMapFunc(policyOfCheckpoint), batch), builder.WithPredicates(checkpointSettled))
}

// policyControllerWithout is policyController without the Checkpoint
// watch, for a controller no settled Checkpoint gives anything to do: in a
// round every Checkpoint settles, and each would reconcile all the
// policy's workloads.
func (c *Controller) policyControllerWithout(mgr manager.Manager, name string, batch time.Duration) *builder.Builder {
	inNamespace := handler.EnqueueRequestsFromMapFunc(c.policiesInNamespace)
	return ctrl.NewControllerManagedBy(mgr).Named(name).WithOptions(c.bounded()).
		// The policy's own status writes change no decision.
		For(&v1alpha1.CheckpointPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Migration{}, inNamespace).
		Watches(&workv1alpha2.ResourceBinding{}, batched(inNamespace, batch), builder.WithPredicates(bindingChanged)).
		Watches(&appsv1.StatefulSet{}, inNamespace, builder.WithPredicates(templateChanged)).
		Watches(&appsv1.Deployment{}, inNamespace, builder.WithPredicates(templateChanged)).
		// The restore plans the policy owns: the checkpoints controller
		// reports them armed as soon as the restoreplan controller wrote
		// them, not at its next scheduled round.
		Owns(&policyv1alpha1.OverridePolicy{})
}

// policyWorkloads reads a CheckpointPolicy and the workloads it selects;
// nil when the policy is gone or going (owner references clean up).
func (c *Controller) policyWorkloads(ctx context.Context, req ctrl.Request) (*v1alpha1.CheckpointPolicy, []*workload, error) {
	p := &v1alpha1.CheckpointPolicy{}
	if err := c.Client.Get(ctx, req.NamespacedName, p); err != nil || p.DeletionTimestamp != nil {
		return nil, nil, client.IgnoreNotFound(err)
	}
	workloads, err := c.selectedWorkloads(ctx, p)
	return p, workloads, err
}
