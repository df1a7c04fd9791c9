package migration

import (
	"context"
	"fmt"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// ClusterReconciler watches Karmada Clusters for `karmadactl cordon`
// (taint cluster.karmada.io/unschedulable:NoSchedule). A cordon evicts
// nothing, but announces a move: for every protected workload on the
// cluster it starts a Cordon Migration, which holds the binding's
// scheduling, takes a fresh checkpoint and arms it before a reschedule
// (WorkloadRebalancer) can move the workload.
type ClusterReconciler struct{ *Controller }

// Reconcile implements reconcile.Reconciler.
func (r ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cl := &clusterv1alpha1.Cluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, cl); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !taintedFor(cl, clusterv1alpha1.TaintClusterUnscheduler, corev1.TaintEffectNoSchedule) {
		return ctrl.Result{}, nil
	}
	since := cordonedAt(cl)
	var policies v1alpha1.CheckpointPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return ctrl.Result{}, err
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		workloads, err := r.selectedWorkloads(ctx, p)
		if err != nil {
			return ctrl.Result{}, err
		}
		for _, w := range workloads {
			if err := r.cordoned(ctx, p, w, cl.Name, since); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, nil
}

// cordonedAt is when the cordon taint was added (or zero).
func cordonedAt(cl *clusterv1alpha1.Cluster) time.Time {
	for _, t := range cl.Spec.Taints {
		if t.Key == clusterv1alpha1.TaintClusterUnscheduler && t.TimeAdded != nil {
			return t.TimeAdded.Time
		}
	}
	return time.Time{}
}

func (r ClusterReconciler) cordoned(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, cluster string, since time.Time) error {
	rb, err := r.binding(ctx, w)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !contains(BoundClusters(rb), cluster) {
		return nil
	}
	if active, err := r.activeMigration(ctx, w); err != nil || active != nil {
		return err
	}
	// One Cordon Migration per cordon: an earlier one for this cordon
	// (created after the taint) means the move was handled.
	var l v1alpha1.MigrationList
	if err := r.reader().List(ctx, &l, client.InNamespace(w.ns()), client.MatchingLabels{LabelWorkload: w.label(), LabelCluster: cluster}); err != nil {
		return err
	}
	for _, m := range l.Items {
		if m.Spec.Trigger == v1alpha1.TriggerCordon && !m.CreationTimestamp.Time.Before(since.Truncate(time.Second)) {
			return nil
		}
	}
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: truncate(w.name(), 40) + "-cordon-",
			Namespace:    w.ns(),
			Labels:       map[string]string{LabelWorkload: w.label(), LabelPolicy: p.Name, LabelCluster: cluster, LabelManagedBy: ManagedBy},
		},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()},
			Trigger:     v1alpha1.TriggerCordon,
		},
	}
	if err := r.Client.Create(ctx, m); err != nil {
		return fmt.Errorf("cordon of %s: migration of %s: %w", cluster, w.label(), err)
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "Cordoned", "cluster %s cordoned: Migration %s takes a fresh checkpoint before any reschedule", cluster, m.Name)
	return nil
}
