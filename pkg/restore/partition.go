package restore

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A StatefulSet restored into a cluster that already runs some of its
// pods (a replica moved into a Divided placement's other cluster) must not
// roll those pods: the restore's template change would restart them from
// the new template, and their process state would be lost. The rolling
// update's partition keeps ordinals below it on their revision, so the
// plan sets it to the number of pods that stay (Plan.KeepPods), and the
// restored workload keeps it (KeepPartition) for as long as Retain keeps
// the restore.

// keptStrategy is the updateStrategy a plan with KeepPods gives obj, nil
// when none is needed (no KeepPods, not a StatefulSet, OnDelete: its pods
// are never rolled by a template change).
func keptStrategy(obj *unstructured.Unstructured, keep int32) (map[string]interface{}, error) {
	if keep <= 0 || obj.GetKind() != "StatefulSet" {
		return nil, nil
	}
	strategy, _, err := unstructured.NestedMap(obj.Object, "spec", "updateStrategy")
	if err != nil {
		return nil, fmt.Errorf("restore %s/%s: spec.updateStrategy: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	if strategy == nil {
		strategy = map[string]interface{}{}
	}
	if t, _ := strategy["type"].(string); t == "OnDelete" {
		return nil, nil
	}
	strategy["type"] = "RollingUpdate"
	rolling, _ := strategy["rollingUpdate"].(map[string]interface{})
	if rolling == nil {
		rolling = map[string]interface{}{}
	}
	if current, _, _ := unstructured.NestedInt64(rolling, "partition"); current < int64(keep) {
		rolling["partition"] = int64(keep)
	}
	strategy["rollingUpdate"] = rolling
	return strategy, nil
}

// KeepPartition gives desired the observed StatefulSet's rolling update
// partition when it is higher: a restore into a cluster that already ran
// pods set it (keptStrategy), and dropping it when the plan is withdrawn
// would roll those pods onto the restored template. Call it only when
// the restore is kept (KeepRestored).
func KeepPartition(desired, observed *unstructured.Unstructured) error {
	if observed.GetKind() != "StatefulSet" {
		return nil
	}
	kept, found, err := unstructured.NestedInt64(observed.Object, "spec", "updateStrategy", "rollingUpdate", "partition")
	if err != nil || !found || kept <= 0 {
		return err
	}
	strategy, err := keptStrategy(desired, int32(kept))
	if err != nil || strategy == nil {
		return err
	}
	return unstructured.SetNestedMap(desired.Object, strategy, "spec", "updateStrategy")
}
