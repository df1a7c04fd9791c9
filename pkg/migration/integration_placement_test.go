package migration_test

import (
	"fmt"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util/helper"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
)

// Checkpoints' bindings are placed by the controller, under the shipped
// RBAC, on the one cluster their policy names, as Karmada's scheduler
// would: a cordon's NoSchedule taint is tolerated, a NoExecute cluster
// gets no new Checkpoint, an evicted binding is not placed again, and
// other bindings are left to Karmada's scheduler. Karmada's taint manager
// never evicts the Checkpoints a lost cluster already has, and finds in
// each placed binding the applied placement it decides from.
func TestCheckpointPlacement(t *testing.T) {
	h := startWith(t, harnessOptions{shippedRBAC: true})
	cp := h.protectedOnMember1(time.Hour)

	var pps policyv1alpha1.PropagationPolicyList
	if err := h.c.List(h.ctx, &pps, client.InNamespace(h.ns), client.MatchingLabels{migration.LabelManagedBy: migration.ManagedBy}); err != nil {
		t.Fatal(err)
	}
	if len(pps.Items) == 0 {
		t.Fatal("no PropagationPolicy carries the Checkpoints")
	}
	lostTaints := []corev1.Taint{{Key: "cluster.karmada.io/not-ready", Effect: corev1.TaintEffectNoExecute}}
	for _, pp := range pps.Items {
		if pp.Spec.SchedulerName != migration.CheckpointSchedulerName {
			t.Errorf("PropagationPolicy %s: schedulerName %q, want %q", pp.Name, pp.Spec.SchedulerName, migration.CheckpointSchedulerName)
		}
		// The taint manager's own test (enqueueBinding): every taint
		// tolerated, for good, is never queued for eviction.
		all, used := helper.GetMatchingTolerations(lostTaints, pp.Spec.Placement.ClusterTolerations)
		if !all || helper.GetMinTolerationTimeWithCurrentTime(lostTaints, used, time.Now()) >= 0 {
			t.Errorf("PropagationPolicy %s: Karmada would evict its Checkpoints from a lost cluster (tolerations %+v)", pp.Name, pp.Spec.Placement.ClusterTolerations)
		}
	}
	tolerations := pps.Items[0].Spec.Placement.ClusterTolerations

	h.cordon("member1", true)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "lost"},
		Spec: clusterv1alpha1.ClusterSpec{Taints: lostTaints}})

	onCordoned := h.checkpointBinding("on-cordoned", cp.Name, migration.CheckpointSchedulerName, "member1", tolerations, nil)
	onLost := h.checkpointBinding("on-lost", cp.Name, migration.CheckpointSchedulerName, "lost", tolerations, nil)
	evicted := h.checkpointBinding("evicted", cp.Name, migration.CheckpointSchedulerName, "member1", tolerations,
		[]workv1alpha2.GracefulEvictionTask{{FromCluster: "member1", Reason: "TaintUntolerated", Producer: "taint-manager"}})
	karmadas := h.checkpointBinding("karmadas", cp.Name, "default-scheduler", "member1", tolerations, nil)

	h.eventually("the cordoned cluster's Checkpoint placed there", 20*time.Second, func() (bool, string) {
		rb := h.getBinding(onCordoned)
		cond := meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled)
		return len(rb.Spec.Clusters) == 1 && rb.Spec.Clusters[0].Name == "member1" && cond == nil,
			fmt.Sprintf("clusters %v, Scheduled %+v", rb.Spec.Clusters, cond)
	})
	h.eventually("the lost cluster's Checkpoint not placed, and why", 20*time.Second, func() (bool, string) {
		rb := h.getBinding(onLost)
		cond := meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled)
		return len(rb.Spec.Clusters) == 0 && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "NoClusterFit",
			fmt.Sprintf("clusters %v, Scheduled %+v", rb.Spec.Clusters, cond)
	})
	// The taint goes: the retry places it and takes back NoClusterFit.
	h.untaint("lost")
	h.eventually("the recovered cluster's Checkpoint placed there", 45*time.Second, func() (bool, string) {
		rb := h.getBinding(onLost)
		cond := meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled)
		return len(rb.Spec.Clusters) == 1 && rb.Spec.Clusters[0].Name == "lost" && cond != nil && cond.Status == metav1.ConditionTrue &&
				rb.Status.SchedulerObservedGeneration == rb.Generation,
			fmt.Sprintf("clusters %v, Scheduled %+v", rb.Spec.Clusters, cond)
	})
	// A binding placed by a release that did not record the applied
	// placement gets it, and stays where it is.
	placedBefore := h.checkpointBinding("placed-before", cp.Name, migration.CheckpointSchedulerName, "lost", tolerations, nil,
		workv1alpha2.TargetCluster{Name: "lost"})
	// What Karmada's taint manager reads (syncBindingEviction): each
	// placed binding's applied placement tolerates a lost cluster's
	// NoExecute taint for good. Without the annotation it errs and
	// retries the binding.
	for name, cluster := range map[string]string{onCordoned: "member1", onLost: "lost", placedBefore: "lost"} {
		h.eventually("binding "+name+" records the placement Karmada's taint manager reads", 20*time.Second, func() (bool, string) {
			rb := h.getBinding(name)
			applied, err := helper.GetAppliedPlacement(rb.Annotations)
			if err != nil || applied == nil {
				return false, fmt.Sprintf("applied placement %v (%v)", applied, err)
			}
			all, used := helper.GetMatchingTolerations(lostTaints, applied.ClusterTolerations)
			forGood := all && helper.GetMinTolerationTimeWithCurrentTime(lostTaints, used, time.Now()) < 0
			return forGood && len(rb.Spec.Clusters) == 1 && rb.Spec.Clusters[0].Name == cluster,
				fmt.Sprintf("tolerated for good %v, clusters %v", forGood, rb.Spec.Clusters)
		})
	}
	// The placed ones prove the controller has run over all of them.
	for _, name := range []string{evicted, karmadas} {
		if rb := h.getBinding(name); len(rb.Spec.Clusters) != 0 || len(rb.Status.Conditions) != 0 {
			t.Errorf("binding %s was placed: clusters %v, conditions %+v", name, rb.Spec.Clusters, rb.Status.Conditions)
		}
	}
}

// checkpointBinding creates the ResourceBinding Karmada's detector makes
// for a Checkpoint under a policy placing it on cluster with tolerations
// (already placed on placed, if given), and returns its name.
func (h *harness) checkpointBinding(name, checkpoint, scheduler, cluster string, tolerations []corev1.Toleration, evictions []workv1alpha2.GracefulEvictionTask,
	placed ...workv1alpha2.TargetCluster) string {
	h.t.Helper()
	rb := &workv1alpha2.ResourceBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name},
		Spec: workv1alpha2.ResourceBindingSpec{
			Resource: workv1alpha2.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.CheckpointKind,
				Namespace: h.ns, Name: checkpoint},
			SchedulerName: scheduler,
			Placement: &policyv1alpha1.Placement{
				ClusterAffinity:    &policyv1alpha1.ClusterAffinity{ClusterNames: []string{cluster}},
				ClusterTolerations: tolerations,
			},
			GracefulEvictionTasks: evictions,
			Clusters:              placed,
		},
	}
	h.create(rb)
	return name
}

func (h *harness) untaint(cluster string) {
	h.t.Helper()
	cl := &clusterv1alpha1.Cluster{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Name: cluster}, cl); err != nil {
		h.t.Fatal(err)
	}
	cl.Spec.Taints = nil
	if err := h.c.Update(h.ctx, cl); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) getBinding(name string) *workv1alpha2.ResourceBinding {
	h.t.Helper()
	rb := &workv1alpha2.ResourceBinding{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, rb); err != nil {
		h.t.Fatal(err)
	}
	return rb
}
