package interpreter

import (
	"context"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"github.com/karmada-io/karmada/pkg/util/gclient"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
)

// Micro-benchmarks of each operation through Karmada's webhook.Handle
// (decode of the object, our operation, response completion), without HTTP.
func benchmark(b *testing.B, req configv1alpha1.ResourceInterpreterRequest) {
	wh := webhook.NewWebhook(&Interpreter{}, webhook.NewDecoder(gclient.NewSchema()))
	r := webhook.Request{ResourceInterpreterRequest: req}
	ctx := context.Background()
	if resp := wh.Handle(ctx, r); !resp.Successful {
		b.Fatalf("%+v", resp.Status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		wh.Handle(ctx, r)
	}
}

func BenchmarkInterpretReplica(b *testing.B) {
	benchmark(b, request(b, configv1alpha1.InterpreterOperationInterpretReplica, toU(b, statefulSet())))
}

func BenchmarkReviseReplica(b *testing.B) {
	req := request(b, configv1alpha1.InterpreterOperationReviseReplica, toU(b, statefulSet()))
	n := int32(5)
	req.DesiredReplicas = &n
	benchmark(b, req)
}

func BenchmarkRetain(b *testing.B) {
	obj := toU(b, statefulSet())
	req := request(b, configv1alpha1.InterpreterOperationRetain, manifest(obj))
	o := raw(b, obj)
	req.ObservedObject = &o
	benchmark(b, req)
}

func BenchmarkInterpretStatus(b *testing.B) {
	benchmark(b, request(b, configv1alpha1.InterpreterOperationInterpretStatus, toU(b, statefulSet())))
}

func BenchmarkInterpretHealth(b *testing.B) {
	benchmark(b, request(b, configv1alpha1.InterpreterOperationInterpretHealth, toU(b, statefulSet())))
}

func BenchmarkAggregateStatus(b *testing.B) {
	obj := toU(b, statefulSet())
	req := request(b, configv1alpha1.InterpreterOperationAggregateStatus, manifest(obj))
	req.AggregatedStatus = itemsFor(b, obj, "m1", "m2", "m3")
	benchmark(b, req)
}

func BenchmarkInterpretDependency(b *testing.B) {
	benchmark(b, request(b, configv1alpha1.InterpreterOperationInterpretDependency, toU(b, statefulSet())))
}

func BenchmarkAggregateStatusCheckpoint(b *testing.B) {
	req := request(b, configv1alpha1.InterpreterOperationAggregateStatus, toU(b, checkpoint("")))
	req.AggregatedStatus = append(req.AggregatedStatus, checkpointItem(b, "m1", "Succeeded"))
	benchmark(b, req)
}
