package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// CheckpointSchedulerName is the schedulerName of the PropagationPolicies
// that carry Checkpoints. Karmada's scheduler leaves bindings of another
// scheduler alone, and the checkpointplacement controller places them.
//
// Why not Karmada's scheduler: it runs one binding at a time, and each
// costs two or three writes to the Karmada API server. With a Checkpoint
// per workload and round, a busy control plane placed about three a
// second, which made a 1,000-workload round last minutes. A Checkpoint's
// placement needs no choice: its policy names exactly one cluster.
const CheckpointSchedulerName = "stateshift-checkpoints"

// CheckpointPlacementReconciler is the only writer of the placement
// (spec.clusters and the Scheduled condition) of the ResourceBindings of
// Checkpoints. It places a binding once, on the single cluster its
// policy's cluster affinity names, as Karmada's scheduler would for such a
// policy: not on a cluster with a taint it does not tolerate (the lost
// member's NoExecute taint among them), and never again after
// Karmada evicted it from there (a lost member's Checkpoints stay where
// they were).
type CheckpointPlacementReconciler struct{ *Controller }

func setupCheckpointPlacement(mgr manager.Manager, c *Controller) error {
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-checkpointplacement").WithOptions(c.bounded()).
		For(&workv1alpha2.ResourceBinding{}, builder.WithPredicates(predicate.NewPredicateFuncs(isCheckpointBinding),
			predicate.GenerationChangedPredicate{})).
		Complete(CheckpointPlacementReconciler{c})
}

// isCheckpointBinding passes the bindings this controller places: of a
// Checkpoint, under CheckpointSchedulerName.
func isCheckpointBinding(o client.Object) bool {
	rb, ok := o.(*workv1alpha2.ResourceBinding)
	return ok && rb.Spec.SchedulerName == CheckpointSchedulerName &&
		rb.Spec.Resource.APIVersion == v1alpha1.GroupVersion.String() && rb.Spec.Resource.Kind == v1alpha1.CheckpointKind
}

// Reconcile implements reconcile.Reconciler.
func (r CheckpointPlacementReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rb := &workv1alpha2.ResourceBinding{}
	if err := r.Client.Get(ctx, req.NamespacedName, rb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !isCheckpointBinding(rb) || rb.DeletionTimestamp != nil || len(rb.Spec.GracefulEvictionTasks) > 0 {
		return ctrl.Result{}, nil
	}
	if len(rb.Spec.Clusters) > 0 {
		// Placed by a release that did not record the applied placement,
		// or the placement changed since.
		return ctrl.Result{}, r.recordAppliedPlacement(ctx, rb, rb.Spec.Clusters)
	}
	cluster, why, err := r.checkpointCluster(ctx, rb)
	if err != nil {
		return ctrl.Result{}, err
	}
	if cluster == "" {
		// As Karmada's scheduler does, try again later: a taint goes.
		return ctrl.Result{RequeueAfter: 30 * time.Second}, r.setScheduled(ctx, rb, metav1.ConditionFalse, "NoClusterFit", why)
	}
	if err := r.recordAppliedPlacement(ctx, rb, []workv1alpha2.TargetCluster{{Name: cluster}}); err != nil {
		return ctrl.Result{}, err
	}
	// One write per Checkpoint is the usual cost: the Scheduled condition
	// is written only to take back an earlier NoClusterFit (a Checkpoint
	// is placed once, and nothing reads the condition of a placed one).
	if meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled) == nil {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.setScheduled(ctx, rb, metav1.ConditionTrue, "Success", "placed on "+cluster+" by "+CheckpointSchedulerName)
}

// recordAppliedPlacement places the binding on clusters and records the
// placement it applied, in one patch, as Karmada's scheduler does
// (policy.karmada.io/applied-placement, the JSON of spec.placement).
// Karmada's taint manager decides from that annotation whether a binding
// on a NoExecute cluster tolerates the taint; without it, it logged "the
// applied placement for ResourceBining can not be empty" for every
// Checkpoint of a lost member and retried each, and the retries took the
// eviction queue's shared rate-limit tokens from the workloads the loss
// was moving: a storm of 100 took minutes to be evicted.
func (r CheckpointPlacementReconciler) recordAppliedPlacement(ctx context.Context, rb *workv1alpha2.ResourceBinding, clusters []workv1alpha2.TargetCluster) error {
	if rb.Spec.Placement == nil {
		return nil // checkpointCluster places no binding without one
	}
	applied, err := json.Marshal(*rb.Spec.Placement)
	if err != nil {
		return fmt.Errorf("binding %s/%s: placement: %w", rb.Namespace, rb.Name, err)
	}
	if rb.Annotations[util.PolicyPlacementAnnotation] == string(applied) && equality.Semantic.DeepEqual(rb.Spec.Clusters, clusters) {
		return nil
	}
	patch := client.MergeFrom(rb.DeepCopy())
	if rb.Annotations == nil {
		rb.Annotations = map[string]string{}
	}
	rb.Annotations[util.PolicyPlacementAnnotation] = string(applied)
	rb.Spec.Clusters = clusters
	if err := r.Client.Patch(ctx, rb, patch); err != nil {
		return fmt.Errorf("place binding %s/%s on %v: %w", rb.Namespace, rb.Name, clusters, err)
	}
	return nil
}

// checkpointCluster is the one cluster the binding's placement names, or
// "" and why when it cannot take the Checkpoint now.
func (r CheckpointPlacementReconciler) checkpointCluster(ctx context.Context, rb *workv1alpha2.ResourceBinding) (string, string, error) {
	aff := rb.Spec.Placement
	if aff == nil || aff.ClusterAffinity == nil || len(aff.ClusterAffinity.ClusterNames) != 1 {
		return "", "the placement does not name exactly one cluster", nil
	}
	name := aff.ClusterAffinity.ClusterNames[0]
	cl := &clusterv1alpha1.Cluster{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, cl); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "cluster " + name + " does not exist", nil
		}
		if meta.IsNoMatchError(err) {
			return name, "", nil // no Cluster API (a bare API server): no taints to respect
		}
		return "", "", fmt.Errorf("read cluster %s: %w", name, err)
	}
	for i := range cl.Spec.Taints {
		t := &cl.Spec.Taints[i]
		// The policy tolerates NoExecute only to keep Karmada from
		// evicting the Checkpoints already there: a new one goes to no
		// cluster being emptied or lost.
		if t.Effect == corev1.TaintEffectNoExecute {
			return "", fmt.Sprintf("cluster %s has the taint %s:%s: no new Checkpoint goes to a cluster being emptied or lost", name, t.Key, t.Effect), nil
		}
		if t.Effect == corev1.TaintEffectNoSchedule && !tolerated(klog.FromContext(ctx), aff.ClusterTolerations, t) {
			return "", fmt.Sprintf("cluster %s has the taint %s:%s, which the placement does not tolerate", name, t.Key, t.Effect), nil
		}
	}
	return name, "", nil
}

// tolerated is Karmada's TaintToleration filter for one taint.
func tolerated(log klog.Logger, tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(log, taint, false) {
			return true
		}
	}
	return false
}

// setScheduled writes the Scheduled condition as Karmada's scheduler
// does, with the generation it observed.
func (r CheckpointPlacementReconciler) setScheduled(ctx context.Context, rb *workv1alpha2.ResourceBinding, status metav1.ConditionStatus, reason, msg string) error {
	patch := client.MergeFrom(rb.DeepCopy())
	changed := meta.SetStatusCondition(&rb.Status.Conditions, metav1.Condition{Type: workv1alpha2.Scheduled, Status: status, Reason: reason, Message: msg})
	if !changed && rb.Status.SchedulerObservedGeneration == rb.Generation {
		return nil
	}
	rb.Status.SchedulerObservedGeneration = rb.Generation
	if err := r.Client.Status().Patch(ctx, rb, patch); err != nil {
		return fmt.Errorf("binding %s/%s status: %w", rb.Namespace, rb.Name, err)
	}
	return nil
}
