package migration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// dividedOneOne is issue 11 defect 1's start: a StatefulSet Divided 1:1
// over member1 and member2 (each runs its own db-0; the harness's one API
// server holds one db-0 that both clusters list), protected, with a
// verified checkpoint of each cluster's db-0.
func dividedOneOne(t *testing.T) *harness {
	h := start(t)
	for _, c := range []string{"member1", "member2"} {
		h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: c}})
	}
	h.statefulSet("member1", "member2")
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Placement = &policyv1alpha1.Placement{ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
			ReplicaSchedulingType: policyv1alpha1.ReplicaSchedulingTypeDivided}}
	})
	h.updateBinding(true, func(rb *workv1alpha2.ResourceBinding) { // both run healthy, as Karmada reports
		for _, c := range []string{"member1", "member2"} {
			rb.Status.AggregatedStatus = append(rb.Status.AggregatedStatus, workv1alpha2.AggregatedStatusItem{
				ClusterName: c, Applied: true, Health: workv1alpha2.ResourceHealthy, Status: &runtime.RawExtension{Raw: []byte(`{"readyReplicas":1}`)}})
		}
	})
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.eventually("a verified checkpoint of db-0 in each cluster", 20*time.Second, func() (bool, string) {
		h.agent(true)
		seen := map[string]bool{}
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
			return false, err.Error()
		}
		for _, cp := range l.Items {
			if cp.Status.Phase == v1alpha1.CheckpointSucceeded {
				seen[cp.Labels["stateshift.io/cluster"]] = true
			}
		}
		return seen["member1"] && seen["member2"], fmt.Sprintf("%v", seen)
	})
	return h
}

// karmadaMovesMember1ToMember2 plays Karmada's scheduler evicting member1:
// both replicas on member2.
func (h *harness) karmadaMovesMember1ToMember2() {
	h.t.Helper()
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 2}}
	})
	h.updateBinding(true, func(rb *workv1alpha2.ResourceBinding) { rb.Status.SchedulerObservedGeneration = rb.Generation })
}

// restoringIntoDB1 waits for the Migration to restore member1's db-0 into
// member2's new db-1, with the restore plan's rule for member2 keeping
// db-0 (partition 1) and giving db-1 member1's checkpoint; it returns the
// checkpoint's name.
func (h *harness) restoringIntoDB1(name string) string {
	h.t.Helper()
	m := &v1alpha1.Migration{}
	h.eventually("Restoring member1/db-0 into member2/db-1", 20*time.Second, func() (bool, string) {
		h.agent(true)
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, m); err != nil {
			return false, err.Error()
		}
		cps := m.Status.Checkpoints
		ok := m.Status.Phase == v1alpha1.MigrationRestoring && m.Status.DestinationCluster == "member2" &&
			len(cps) == 1 && cps[0].Cluster == "member1" && cps[0].Pod == "db-0" && cps[0].Into == "db-1"
		return ok, fmt.Sprintf("%s %q dest=%s checkpoints=%+v", m.Status.Phase, m.Status.Message, m.Status.DestinationCluster, cps)
	})
	image := m.Status.Checkpoints[0].Images["app"]
	h.eventually("the plan's rule for member2", 20*time.Second, func() (bool, string) {
		rule := receiverRule(h.overridePolicy(), "member2")
		if rule == nil {
			return false, fmt.Sprintf("no rule for member2 in %+v", h.overridePolicy())
		}
		pods, partition := ruleValues(h.t, rule)
		want := fmt.Sprintf(`{"db-1":{"app":%q}}`, image)
		return pods == want && partition == 1, fmt.Sprintf("pod-images %s (want %s) partition %d", pods, want, partition)
	})
	return m.Status.Checkpoints[0].Name
}

// receiverRule is the OverridePolicy's rule naming cluster, nil when none.
func receiverRule(op *policyv1alpha1.OverridePolicy, cluster string) *policyv1alpha1.RuleWithCluster {
	if op == nil {
		return nil
	}
	for i, r := range op.Spec.OverrideRules {
		if r.TargetCluster != nil && strings.Join(r.TargetCluster.ClusterNames, ",") == cluster {
			return &op.Spec.OverrideRules[i]
		}
	}
	return nil
}

// ruleValues reads the pod-images annotation and the partition a rule sets.
func ruleValues(t testing.TB, rule *policyv1alpha1.RuleWithCluster) (podImages string, partition int64) {
	for _, o := range rule.Overriders.Plaintext {
		switch {
		case strings.HasSuffix(o.Path, strings.ReplaceAll(restore.AnnotationPodImages, "/", "~1")):
			if err := json.Unmarshal(o.Value.Raw, &podImages); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(o.Path, "/template/metadata/annotations"): // the whole map
			var a map[string]string
			if err := json.Unmarshal(o.Value.Raw, &a); err != nil {
				t.Fatal(err)
			}
			podImages = a[restore.AnnotationPodImages]
		case o.Path == "/spec/updateStrategy":
			var s struct {
				RollingUpdate struct{ Partition int64 } `json:"rollingUpdate"`
			}
			if err := json.Unmarshal(o.Value.Raw, &s); err != nil {
				t.Fatal(err)
			}
			partition = s.RollingUpdate.Partition
		}
	}
	return podImages, partition
}

// member2RunsRestored plays member2 after the restore: db-0 as it was,
// db-1 restored from checkpoint, the workload healthy and reporting it.
func (h *harness) member2RunsRestored(checkpoint string) {
	h.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: h.ns, Labels: map[string]string{"app": "db"},
			Annotations: map[string]string{restore.AnnotationRestoredFrom: checkpoint}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/db:1"}}},
	}
	h.create(pod)
	pod.Status.Phase = corev1.PodRunning
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		h.t.Fatal(err)
	}
	raw := fmt.Sprintf(`{"readyReplicas":2,"stateshift":{"restoredFrom":%q}}`, checkpoint)
	h.updateBinding(true, func(rb *workv1alpha2.ResourceBinding) {
		rb.Status.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{
			ClusterName: "member2", Applied: true, Health: workv1alpha2.ResourceHealthy, Status: &runtime.RawExtension{Raw: []byte(raw)},
		}}
	})
}

// restoredAndWithdrawn waits for the Migration to end Restored and the
// plan's rule for member2 to be gone (db-1 restored once).
func (h *harness) restoredAndWithdrawn(name string) {
	h.t.Helper()
	h.eventually("Restored, member2's rule withdrawn", 20*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, m); err != nil {
			return false, err.Error()
		}
		rule := receiverRule(h.overridePolicy(), "member2")
		return m.Status.Phase == v1alpha1.MigrationRestored && rule == nil, fmt.Sprintf("%s %q rule=%v", m.Status.Phase, m.Status.Message, rule != nil)
	})
}

// TestDividedCordonRestoresIntoReceiver (defect 1): cordoning member1 of
// a StatefulSet Divided 1:1 over member1 and member2 moves only member1's
// replica. Before, the Cordon Migration took both clusters as sources
// (checkpointing member2's db-0 too) and, once Karmada gave member2 both
// replicas, ended Failed "NoNewCluster": member2's new db-1 started cold.
// Now member1 is the only source, member2 is the receiver: its db-0 stays
// (partition 1), its new db-1 restores member1's db-0.
func TestDividedCordonRestoresIntoReceiver(t *testing.T) {
	h := dividedOneOne(t)
	h.cordon("member1", true)
	mig := h.activeCordon()
	h.eventually("Armed from member1's fresh checkpoint only, hold lifted", 20*time.Second, func() (bool, string) {
		h.agent(true)
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
		ok := m.Status.Phase == v1alpha1.MigrationArmed && !h.held() && strings.Join(m.Status.SourceClusters, ",") == "member1" &&
			len(m.Status.Checkpoints) == 1 && m.Status.Checkpoints[0].Cluster == "member1"
		return ok, fmt.Sprintf("%s %q sources=%v checkpoints=%+v held=%v", m.Status.Phase, m.Status.Message, m.Status.SourceClusters, m.Status.Checkpoints, h.held())
	})
	if op := h.overridePolicy(); op == nil || !strings.Contains(excludes(op), "member2") {
		t.Fatalf("before the move the plan must not rewrite member2, which runs db-0: excludes %q", excludes(op))
	}
	h.karmadaMovesMember1ToMember2()
	cp := h.restoringIntoDB1(mig.Name)
	h.member2RunsRestored(cp)
	h.restoredAndWithdrawn(mig.Name)
}

// TestDividedManualMoveRestoresIntoReceiver (defect 1): a person's move
// of the Divided workload to member2, which already runs db-0. Before it
// ended Failed "AlreadyThere"; now member1's replica moves into member2's
// db-1, restored from member1's fresh checkpoint.
func TestDividedManualMoveRestoresIntoReceiver(t *testing.T) {
	h := dividedOneOne(t)
	h.manualMove("to-member2", "member2", time.Minute)
	h.eventually("the placement moved to member2, member1 kept in a graceful eviction", 20*time.Second, func() (bool, string) {
		h.agent(true)
		rb := h.binding()
		p := rb.Spec.Placement
		return p != nil && p.ClusterAffinity != nil && strings.Join(p.ClusterAffinity.ClusterNames, ",") == "member2",
			fmt.Sprintf("placement %+v migrations %+v", p, h.migrations())
	})
	h.karmadaMovesMember1ToMember2()
	cp := h.restoringIntoDB1("to-member2")
	h.member2RunsRestored(cp)
	h.restoredAndWithdrawn("to-member2")
}

// TestDividedFailoverDetectedIntoReceiver (defect 1): Karmada moves
// member1's replica to member2 on its own (a NoExecute taint, no cordon).
// Before, the detector saw no new cluster and recorded nothing (member2
// already ran the workload); now the move is recorded and restored into
// member2's new db-1.
func TestDividedFailoverDetectedIntoReceiver(t *testing.T) {
	h := dividedOneOne(t)
	h.karmadaMovesMember1ToMember2()
	var name string
	h.eventually("a recorded Migration", 20*time.Second, func() (bool, string) {
		ms := h.migrations()
		if len(ms) == 1 {
			name = ms[0].Name
		}
		return len(ms) == 1, fmt.Sprintf("%d migrations", len(ms))
	})
	cp := h.restoringIntoDB1(name)
	h.member2RunsRestored(cp)
	h.restoredAndWithdrawn(name)
}

// TestDeletedWorkloadCheckpointsPruned (defect 6): Checkpoints are owned
// by their policy, so deleting the workload left them and their images for
// as long as the policy lived. Now they go with the workload.
func TestDeletedWorkloadCheckpointsPruned(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	sts := h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.eventually("a verified checkpoint", 20*time.Second, func() (bool, string) { return len(h.agent(true)) > 0, "" })
	if err := h.c.Delete(h.ctx, sts); err != nil {
		t.Fatal(err)
	}
	h.eventually("the deleted workload's checkpoints gone", 30*time.Second, func() (bool, string) {
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 0, fmt.Sprintf("%d checkpoints left", len(l.Items))
	})
}
