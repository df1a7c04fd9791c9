package interpreter

import (
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func TestInterpretHealthIsKarmadas(t *testing.T) {
	for _, obj := range workloads(t) {
		unready := obj.DeepCopy()
		_ = unstructured.SetNestedField(unready.Object, int64(1), "status", "readyReplicas")
		_ = unstructured.SetNestedField(unready.Object, int64(1), "status", "availableReplicas")
		_ = unstructured.SetNestedField(unready.Object, int64(1), "status", "updatedReplicas")
		for _, o := range []*unstructured.Unstructured{obj, unready} {
			resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretHealth, o))
			want, err := karmada.InterpretHealth(o.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Healthy == nil || *resp.Healthy != want {
				t.Fatalf("%s healthy %v, want %v", o.GetKind(), resp.Healthy, want)
			}
		}
	}
	// The fixtures cover both answers.
	if h, _ := karmada.InterpretHealth(toU(t, statefulSet())); !h {
		t.Fatal("ready StatefulSet should be healthy")
	}
}

func TestInterpretHealthCheckpoint(t *testing.T) {
	for phase, want := range map[stateshiftv1alpha1.CheckpointPhase]bool{
		"": true, "Pending": true, "Checkpointing": true, "Pushing": true, "Succeeded": true, "Failed": false,
	} {
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretHealth, toU(t, checkpoint(phase))))
		if resp.Healthy == nil || *resp.Healthy != want {
			t.Errorf("phase %q: healthy %v, want %v", phase, resp.Healthy, want)
		}
	}
}
