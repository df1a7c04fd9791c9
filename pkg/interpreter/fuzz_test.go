package interpreter

import (
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
)

// FuzzHandle feeds arbitrary bodies through the whole HTTP handler
// (Karmada's decoding, our wrapper and every operation): it must always
// answer a decodable response with a status code, never panic or hang.
// The seed corpus (testdata/fuzz/FuzzHandle) holds a real request of every
// operation and kind, and broken ones.
func FuzzHandle(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := post(t, b, "application/json")
		if resp.Status == nil || resp.Status.Code == 0 {
			t.Fatalf("response without status: %+v", resp)
		}
		if !resp.Successful && resp.Status.Message == "" {
			t.Fatalf("unsuccessful response without message: %+v", resp)
		}
		if resp.Successful && resp.UID == "" {
			t.Fatalf("successful response without uid: %+v", resp)
		}
	})
}

func seedBodies(t testing.TB) [][]byte {
	var out [][]byte
	replicas := int32(2)
	for _, obj := range workloads(t) {
		for _, op := range []configv1alpha1.InterpreterOperation{
			configv1alpha1.InterpreterOperationInterpretReplica, configv1alpha1.InterpreterOperationReviseReplica,
			configv1alpha1.InterpreterOperationRetain, configv1alpha1.InterpreterOperationInterpretStatus,
			configv1alpha1.InterpreterOperationInterpretHealth, configv1alpha1.InterpreterOperationAggregateStatus,
			configv1alpha1.InterpreterOperationInterpretDependency,
		} {
			req := request(t, op, obj)
			switch op {
			case configv1alpha1.InterpreterOperationReviseReplica:
				req.DesiredReplicas = &replicas
			case configv1alpha1.InterpreterOperationRetain:
				o := raw(t, obj)
				req.ObservedObject = &o
			case configv1alpha1.InterpreterOperationAggregateStatus:
				req.AggregatedStatus = itemsFor(t, obj, "m1", "m2")
			}
			out = append(out, body(t, req))
		}
	}
	ckpt := toU(t, checkpoint("Succeeded"))
	for _, op := range []configv1alpha1.InterpreterOperation{
		configv1alpha1.InterpreterOperationInterpretStatus, configv1alpha1.InterpreterOperationInterpretHealth,
	} {
		out = append(out, body(t, request(t, op, ckpt)))
	}
	agg := request(t, configv1alpha1.InterpreterOperationAggregateStatus, ckpt)
	agg.AggregatedStatus = append(agg.AggregatedStatus, checkpointItem(t, "m1", "Pushing"), checkpointItem(t, "m2", "Failed"))
	out = append(out, body(t, agg))
	out = append(out, []byte("not json"), []byte(`{}`), []byte(`{"request":{"uid":"u","operation":"Retain","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"object":{}}}`))
	return out
}
