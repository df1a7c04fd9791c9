package interpreter

import (
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
)

func TestInterpretDependencyIsKarmadas(t *testing.T) {
	for _, obj := range workloads(t) {
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretDependency, obj))
		want, err := karmada.GetDependencies(obj.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 3 { // ConfigMap, Secret, ServiceAccount (and the Deployment's PVC)
			t.Fatalf("%s: fixture should have dependencies, got %+v", obj.GetKind(), want)
		}
		sameJSON(t, resp.Dependencies, want)
	}
}

func TestInterpretDependencyNotForCheckpoint(t *testing.T) {
	resp := post(t, body(t, request(t, configv1alpha1.InterpreterOperationInterpretDependency, toU(t, checkpoint("Pending")))), "application/json")
	if resp.Successful || resp.Status.Code != 501 {
		t.Fatalf("response %+v", resp)
	}
}
