package interpreter

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

type healthInterpreter func(obj *unstructured.Unstructured) (bool, error)

var healthInterpreters = map[schema.GroupVersionKind]healthInterpreter{
	statefulSetGVK: karmada.InterpretHealth,
	deploymentGVK:  karmada.InterpretHealth,
	checkpointGVK:  checkpointHealth,
}

// checkpointHealth: a Checkpoint is healthy unless it failed; a pending
// or running one is progressing, and Karmada's graceful eviction and
// application failover must not treat it as broken.
func checkpointHealth(obj *unstructured.Unstructured) (bool, error) {
	phase, _, err := unstructured.NestedString(obj.Object, "status", "phase")
	if err != nil {
		return false, err
	}
	return stateshiftv1alpha1.CheckpointPhase(phase) != stateshiftv1alpha1.CheckpointFailed, nil
}
