package interpreter

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

type healthInterpreter func(obj *unstructured.Unstructured) (bool, error)

var healthInterpreters = map[schema.GroupVersionKind]healthInterpreter{
	statefulSetGVK: statefulSetHealth,
	deploymentGVK:  karmada.InterpretHealth,
	checkpointGVK:  checkpointHealth,
}

// checkpointHealth: a Checkpoint is healthy unless it failed; a pending
// or running one is progressing, and Karmada's graceful eviction and
// application failover must not treat it as broken. The shipped webhook
// configuration no longer asks (Karmada's default, healthy, costs no call
// and no Event per status change); the answer stays for configurations
// applied by earlier versions.
func checkpointHealth(obj *unstructured.Unstructured) (bool, error) {
	phase, _, err := unstructured.NestedString(obj.Object, "status", "phase")
	if err != nil {
		return false, err
	}
	return stateshiftv1alpha1.CheckpointPhase(phase) != stateshiftv1alpha1.CheckpointFailed, nil
}

// statefulSetHealth is Karmada's, except for a rolling update partition:
// the pods below it stay on their revision by design (a restore into a
// cluster that already runs some pods keeps them there, see
// restore.Plan.KeepPods), so, as `kubectl rollout status` does, only the
// replicas from the partition up must be updated, and every replica
// available.
func statefulSetHealth(obj *unstructured.Unstructured) (bool, error) {
	partition, _, _ := unstructured.NestedInt64(obj.Object, "spec", "updateStrategy", "rollingUpdate", "partition")
	if partition <= 0 {
		return karmada.InterpretHealth(obj)
	}
	sts := &appsv1.StatefulSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, sts); err != nil {
		return false, fmt.Errorf("StatefulSet %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	if sts.Status.ObservedGeneration != sts.Generation || sts.Status.UpdatedReplicas < max(replicas-int32(partition), 0) {
		return false, nil
	}
	return sts.Status.AvailableReplicas >= replicas, nil
}
