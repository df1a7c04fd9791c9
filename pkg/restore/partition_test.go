package restore

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestRetainKeepsPartition: a restore into a cluster that kept db-0 set
// the partition to 1. Withdrawing the plan must keep it: with partition 0
// the StatefulSet would roll db-0 onto the restored template (and the
// pod-restore webhook would start it cold: restore once), losing db-0's
// own state. A user's template change wins and drops it.
func TestRetainKeepsPartition(t *testing.T) {
	desired := toU(t, statefulSet())
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, KeepPods: 1}
	observed, err := Rewrite(desired, plan)
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(observed.Object, int64(3), "status", "readyReplicas")
	got, err := Retain(desired, observed)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedInt64(got.Object, "spec", "updateStrategy", "rollingUpdate", "partition"); p != 1 {
		t.Fatalf("partition after the plan was withdrawn = %d, want 1", p)
	}
	changed := desired.DeepCopy()
	containers, _, _ := unstructured.NestedSlice(changed.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]interface{})["image"] = "registry.example.com/team/app:1.5"
	_ = unstructured.SetNestedSlice(changed.Object, containers, "spec", "template", "spec", "containers")
	got, err = Retain(changed, observed)
	if err != nil {
		t.Fatal(err)
	}
	if p, found, _ := unstructured.NestedInt64(got.Object, "spec", "updateStrategy", "rollingUpdate", "partition"); found && p != 0 {
		t.Fatalf("a user's template change kept the restore's partition %d", p)
	}
}
