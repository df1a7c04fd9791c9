package migration

import (
	"context"
	"fmt"
	"strconv"

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
			if err := r.cordoned(ctx, p, w, cl); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, nil
}

func (r ClusterReconciler) cordoned(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, cl *clusterv1alpha1.Cluster) error {
	cluster := cl.Name
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
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			// One name per cordon: the Cluster's generation moves with every
			// taint change, so a later cordon (karmadactl sets no timeAdded)
			// gets its own Migration, and racing reconciles of this one do not.
			Name:      moveName(w.name(), "cordon", cluster, strconv.FormatInt(cl.Generation, 10)),
			Namespace: w.ns(),
			Labels:    map[string]string{LabelWorkload: w.label(), LabelPolicy: p.Name, LabelCluster: cluster, LabelManagedBy: ManagedBy},
		},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()},
			Trigger:     v1alpha1.TriggerCordon,
		},
	}
	if err := r.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("cordon of %s: migration of %s: %w", cluster, w.label(), err)
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "Cordoned", "cluster %s cordoned: Migration %s takes a fresh checkpoint before any reschedule", cluster, m.Name)
	return nil
}
