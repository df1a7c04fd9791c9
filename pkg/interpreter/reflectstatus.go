package interpreter

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/stateshift/stateshift/pkg/restore"
)

type reflectStatusInterpreter func(obj *unstructured.Unstructured) (*runtime.RawExtension, error)

var reflectStatusInterpreters = map[schema.GroupVersionKind]reflectStatusInterpreter{
	statefulSetGVK: reflectWorkloadStatus,
	deploymentGVK:  reflectWorkloadStatus,
	// Karmada's fallback for kinds it does not know is the whole .status.
	checkpointGVK: karmada.ReflectStatus,
}

// reflectWorkloadStatus is Karmada's reflected status plus, under
// restore.StatusField, the restore the member object carries
// ({.stateshift.restoredFrom}), so it reaches rb.status.aggregatedStatus[]
// where the migrations controller reads it.
func reflectWorkloadStatus(obj *unstructured.Unstructured) (*runtime.RawExtension, error) {
	raw, err := karmada.ReflectStatus(obj)
	if err != nil {
		return nil, err
	}
	migration := restore.StatusFromAnnotations(obj.GetAnnotations())
	if migration == nil {
		return raw, nil
	}
	status := map[string]interface{}{}
	if raw != nil && len(raw.Raw) > 0 {
		if err := json.Unmarshal(raw.Raw, &status); err != nil {
			return nil, fmt.Errorf("reflected status of %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	status[restore.StatusField] = migration
	out, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	return &runtime.RawExtension{Raw: out}, nil
}
