package migration

import (
	"reflect"
	"testing"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func atPod(c v1alpha1.Checkpoint, cluster, pod string) v1alpha1.Checkpoint {
	c.Labels = map[string]string{LabelCluster: cluster}
	c.Spec.PodName = pod
	return c
}

func bindingOf(replicas map[string]int32) *workv1alpha2.ResourceBinding {
	rb := &workv1alpha2.ResourceBinding{}
	for c, n := range replicas {
		rb.Spec.Clusters = append(rb.Spec.Clusters, workv1alpha2.TargetCluster{Name: c, Replicas: n})
	}
	return rb
}

// TestReceivers: the Divided 1:1 -> 0:2 move makes member2 a receiver
// whose db-0 stays and whose new db-1 restores member1's db-0; a cluster
// that ran nothing is a plain destination; nothing moved, nothing arrives.
func TestReceivers(t *testing.T) {
	before := map[string]int32{"member1": 1, "member2": 1}
	moved := bindingOf(map[string]int32{"member2": 2})
	got := Receivers("db", before, BoundReplicas(moved), []string{"member1"})
	if !reflect.DeepEqual(got, []Receiver{{Cluster: "member2", Kept: 1, NewPods: []string{"db-1"}}}) {
		t.Fatalf("receivers = %+v", got)
	}
	if a := Arrivals("StatefulSet", "db", []string{"member1"}, before, moved); !reflect.DeepEqual(a, []string{"member2"}) {
		t.Fatalf("arrivals = %v", a)
	}
	if a := Arrivals("StatefulSet", "db", []string{"member1"}, before, bindingOf(before)); len(a) != 0 {
		t.Fatalf("nothing moved yet, arrivals = %v", a)
	}
	if a := Arrivals("Deployment", "web", []string{"member1"}, before, moved); len(a) != 0 {
		t.Fatalf("a Deployment's pods share one template: no receiver, arrivals = %v", a)
	}
	fresh := bindingOf(map[string]int32{"member2": 1, "member3": 1})
	if a := Arrivals("StatefulSet", "db", []string{"member1"}, before, fresh); !reflect.DeepEqual(a, []string{"member3"}) {
		t.Fatalf("new cluster: arrivals = %v", a)
	}
}

// TestAssignInto: moved pods, by cluster and ordinal (db-2 before db-10),
// go to the receiver's new pods in order; extra checkpoints are left out.
func TestAssignInto(t *testing.T) {
	moved := []v1alpha1.MigrationCheckpoint{
		{Name: "c10", Cluster: "member1", Pod: "db-10"}, {Name: "c2", Cluster: "member1", Pod: "db-2"}, {Name: "c0", Cluster: "member3", Pod: "db-0"},
	}
	got := AssignInto(moved, Receiver{Cluster: "member2", Kept: 1, NewPods: []string{"db-1", "db-2"}})
	want := []v1alpha1.MigrationCheckpoint{
		{Name: "c2", Cluster: "member1", Pod: "db-2", Into: "db-1"}, {Name: "c10", Cluster: "member1", Pod: "db-10", Into: "db-2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("assigned %+v", got)
	}
	if k, err := keptPods(got); err != nil || k != 1 {
		t.Fatalf("kept = %d, %v", k, err)
	}
	if _, err := keptPods([]v1alpha1.MigrationCheckpoint{{Into: "web"}}); err == nil {
		t.Fatal("a pod without an ordinal was accepted")
	}
}

// TestRanPodsAndLatestByClusterPod: pods are told apart by cluster (two
// db-0 are two pods, the old latestByPod kept one of them), and only
// checkpoints in (since, until] count as where the workload ran.
func TestRanPodsAndLatestByClusterPod(t *testing.T) {
	a := atPod(ckpt("a", v1alpha1.CheckpointSucceeded, time.Minute, imgA), "member1", "db-0")
	b := atPod(ckpt("b", v1alpha1.CheckpointSucceeded, 2*time.Minute, imgB), "member2", "db-0")
	late := atPod(ckpt("c", v1alpha1.CheckpointSucceeded, 10*time.Minute, imgB), "member2", "db-1")
	cps := []v1alpha1.Checkpoint{a, b, late}
	latest := latestByClusterPod(cps)
	if len(latest) != 3 || latest[PodKey{"member1", "db-0"}].Name != "a" || latest[PodKey{"member2", "db-0"}].Name != "b" {
		t.Fatalf("latest = %v", latest)
	}
	ran := RanPods(cps, time.Time{}, t0.Add(5*time.Minute))
	if !reflect.DeepEqual(ran, map[string][]string{"member1": {"db-0"}, "member2": {"db-0"}}) {
		t.Fatalf("ran = %v", ran)
	}
	if c := PodCounts(RanPods(cps, t0, time.Time{})); c["member2"] != 2 || c["member1"] != 1 {
		t.Fatalf("counts = %v", c)
	}
}

// TestGeneralTargets: a StatefulSet that ran in two clusters restores
// both db-0 into db-0 and db-1 of a new cluster, never one over the
// other; one cluster's pods keep their names.
func TestGeneralTargets(t *testing.T) {
	a := atPod(ckpt("a", v1alpha1.CheckpointSucceeded, time.Minute, imgA), "member1", "db-0")
	b := atPod(ckpt("b", v1alpha1.CheckpointSucceeded, 2*time.Minute, imgB), "member2", "db-0")
	two := GeneralTargets("StatefulSet", "db", map[PodKey]*v1alpha1.Checkpoint{{"member1", "db-0"}: &a, {"member2", "db-0"}: &b})
	if len(two) != 2 || two["db-0"].Name != "a" || two["db-1"].Name != "b" {
		t.Fatalf("two clusters: %v", two)
	}
	one := GeneralTargets("StatefulSet", "db", map[PodKey]*v1alpha1.Checkpoint{{"member2", "db-0"}: &b})
	if len(one) != 1 || one["db-0"].Name != "b" {
		t.Fatalf("one cluster: %v", one)
	}
	p, err := BuildPlan("StatefulSet", two)
	if err != nil || p.Pods["db-1"]["app"] != imgB || p.Pods["db-0"]["app"] != imgA {
		t.Fatalf("plan = %+v, %v", p, err)
	}
}
