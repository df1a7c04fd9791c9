package interpreter

import (
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
)

func TestReviseReplicaIsKarmadas(t *testing.T) {
	for _, obj := range workloads(t) {
		for _, n := range []int32{0, 1, 7} {
			t.Run(obj.GetKind(), func(t *testing.T) {
				req := request(t, configv1alpha1.InterpreterOperationReviseReplica, obj)
				req.DesiredReplicas = &n
				got := patched(t, req, call(t, req))
				want, err := karmada.ReviseReplica(obj.DeepCopy(), int64(n))
				if err != nil {
					t.Fatal(err)
				}
				sameJSON(t, got, want)
			})
		}
	}
}

func TestReviseReplicaNeedsReplicas(t *testing.T) {
	req := request(t, configv1alpha1.InterpreterOperationReviseReplica, toU(t, statefulSet()))
	resp := post(t, body(t, req), "application/json")
	if resp.Successful || resp.Status.Code != 400 {
		t.Fatalf("response %+v", resp)
	}
	negative := int32(-1)
	req.DesiredReplicas = &negative
	if resp := post(t, body(t, req), "application/json"); resp.Successful || resp.Status.Code != 400 {
		t.Fatalf("response %+v", resp)
	}
}
