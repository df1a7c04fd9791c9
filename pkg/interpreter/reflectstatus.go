package interpreter

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

type reflectStatusInterpreter func(obj *unstructured.Unstructured) (*runtime.RawExtension, error)

var reflectStatusInterpreters = map[schema.GroupVersionKind]reflectStatusInterpreter{
	statefulSetGVK: reflectWorkloadStatus,
	deploymentGVK:  reflectWorkloadStatus,
	checkpointGVK:  reflectCheckpointStatus,
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

// reflectCheckpointStatus is the member's whole status (Karmada's fallback
// for kinds it does not know) once the Checkpoint is waiting or finished.
// While an attempt runs it is only the claim: which node, which attempt,
// since when, and the images to clean up. The agent writes the status
// at each stage (claimed, checkpointed, pushed), and every change Karmada
// reflects costs a Work status, a ResourceBinding status and a Checkpoint
// status write in the Karmada API, each with Events; the control plane
// acts only on the wait and the result, so the stages in between stay on
// the member (kubectl get checkpoint there shows them).
//
// A new Checkpoint has no status yet, for which Karmada's fallback answers
// nil; a webhook must answer a status (Karmada refuses a nil one with a
// ReflectStatusFailed Event and retries), so it reflects as {}, which
// aggregation reads as nothing reported.
func reflectCheckpointStatus(obj *unstructured.Unstructured) (*runtime.RawExtension, error) {
	raw, err := karmada.ReflectStatus(obj)
	if err != nil {
		return nil, err
	}
	if raw == nil || len(raw.Raw) == 0 {
		return &runtime.RawExtension{Raw: []byte("{}")}, nil
	}
	// Only a running attempt is decoded: waiting and finished ones go as
	// Karmada reflected them.
	phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
	if p := (stateshiftv1alpha1.CheckpointStatus{Phase: stateshiftv1alpha1.CheckpointPhase(phase)}); !p.IsRunning() {
		return raw, nil
	}
	var status stateshiftv1alpha1.CheckpointStatus
	if err := json.Unmarshal(raw.Raw, &status); err != nil {
		return nil, fmt.Errorf("status of Checkpoint %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	out, err := json.Marshal(status.Claim())
	if err != nil {
		return nil, err
	}
	return &runtime.RawExtension{Raw: out}, nil
}
