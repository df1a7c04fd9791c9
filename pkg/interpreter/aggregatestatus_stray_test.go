package interpreter

import (
	"encoding/json"
	"strings"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The stray images a member's agent records reach the Karmada API's
// Checkpoint, whose finalizer and retention delete them: the aggregated
// status carries them as the member wrote them.
func TestAggregateStatusCheckpointKeepsStrayImages(t *testing.T) {
	template := manifest(toU(t, checkpoint("")))
	unstructured.RemoveNestedField(template.Object, "status")
	s := checkpoint(stateshiftv1alpha1.CheckpointFailed).Status
	s.Containers = nil
	stray := "registry.example.com/ckpt/db@sha256:" + strings.Repeat("2", 64)
	s.StrayImages = []stateshiftv1alpha1.StrayImage{{Container: "app", Image: stray, Attempt: 2, Reason: "VerifyFailed"}}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, configv1alpha1.InterpreterOperationAggregateStatus, template)
	req.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{ClusterName: "m1", Status: &runtime.RawExtension{Raw: raw}, Applied: true}}
	got := patched(t, req, call(t, req))
	strays, _, _ := unstructured.NestedSlice(got.Object, "status", "strayImages")
	want := map[string]interface{}{"container": "app", "image": stray, "attempt": int64(2), "reason": "VerifyFailed"}
	if len(strays) != 1 {
		t.Fatalf("aggregated strayImages %v, want [%v]", strays, want)
	}
	sameJSON(t, strays[0], want)
}
