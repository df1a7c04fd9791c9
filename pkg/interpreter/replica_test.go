package interpreter

import (
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
)

func TestInterpretReplicaIsKarmadas(t *testing.T) {
	for _, obj := range workloads(t) {
		t.Run(obj.GetKind(), func(t *testing.T) {
			resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretReplica, obj))
			replicas, requirements, err := karmada.GetReplicas(obj.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Replicas == nil || *resp.Replicas != replicas {
				t.Fatalf("replicas %v, want %d", resp.Replicas, replicas)
			}
			if replicas == 0 || requirements == nil || requirements.ResourceRequest.Cpu().IsZero() {
				t.Fatalf("fixture should have replicas and requests: %d %+v", replicas, requirements)
			}
			sameJSON(t, resp.ReplicaRequirements, requirements)
		})
	}
}

func TestInterpretReplicaNotForCheckpoint(t *testing.T) {
	resp := post(t, body(t, request(t, configv1alpha1.InterpreterOperationInterpretReplica, toU(t, checkpoint("Succeeded")))), "application/json")
	if resp.Successful || resp.Status == nil || resp.Status.Code != 501 {
		t.Fatalf("response %+v", resp)
	}
}
