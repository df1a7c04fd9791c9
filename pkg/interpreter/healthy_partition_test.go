package interpreter

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestStatefulSetHealthWithPartition: a StatefulSet restored into a
// cluster that kept db-0 runs db-0 on its old revision (partition 1) and
// db-1 on the restored one. Karmada's check (updatedReplicas == replicas)
// would call it unhealthy for ever, and the move would never be Restored;
// as `kubectl rollout status`, only the replicas from the partition up must
// be updated, and every replica available.
func TestStatefulSetHealthWithPartition(t *testing.T) {
	obj := toU(t, statefulSet())
	replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	set := func(o *unstructured.Unstructured, v int64, path ...string) {
		if err := unstructured.SetNestedField(o.Object, v, path...); err != nil {
			t.Fatal(err)
		}
	}
	set(obj, 1, "spec", "updateStrategy", "rollingUpdate", "partition")
	set(obj, replicas-1, "status", "updatedReplicas")
	set(obj, replicas, "status", "availableReplicas")
	if h, err := karmada.InterpretHealth(obj.DeepCopy()); err != nil || h {
		t.Fatalf("Karmada's own check: %v, %v (the case this fixes)", h, err)
	}
	if h, err := statefulSetHealth(obj); err != nil || !h {
		t.Fatalf("partitioned, every replica available: healthy = %v, %v", h, err)
	}
	notYet := obj.DeepCopy()
	set(notYet, replicas-2, "status", "updatedReplicas")
	if h, _ := statefulSetHealth(notYet); h {
		t.Fatal("a replica above the partition not updated yet counted as healthy")
	}
	down := obj.DeepCopy()
	set(down, replicas-1, "status", "availableReplicas")
	if h, _ := statefulSetHealth(down); h {
		t.Fatal("a replica below the partition unavailable counted as healthy")
	}
}
