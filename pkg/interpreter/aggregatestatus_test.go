package interpreter

import (
	"encoding/json"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// itemsFor reflects obj's status through our InterpretStatus (stateshift
// block included) as the work-status controller would, for each cluster.
func itemsFor(t testing.TB, obj *unstructured.Unstructured, clusters ...string) []workv1alpha2.AggregatedStatusItem {
	annotated := withAnnotations(obj, map[string]string{restore.AnnotationLatestCheckpoint: "db-0-ckpt-7"})
	resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, annotated))
	var items []workv1alpha2.AggregatedStatusItem
	for _, c := range clusters {
		items = append(items, workv1alpha2.AggregatedStatusItem{ClusterName: c, Status: resp.RawStatus, Applied: true})
	}
	return items
}

// The workloads aggregate exactly as in Karmada, and the stateshift block
// of each item changes nothing (Karmada's typed decoding ignores it).
func TestAggregateStatusIsKarmadas(t *testing.T) {
	for _, obj := range workloads(t) {
		template := manifest(obj)
		_ = unstructured.SetNestedField(template.Object, map[string]interface{}{}, "status")
		items := itemsFor(t, obj, "member1", "member2")
		req := request(t, configv1alpha1.InterpreterOperationAggregateStatus, template)
		req.AggregatedStatus = items
		got := patched(t, req, call(t, req))

		want, err := karmada.AggregateStatus(template.DeepCopy(), items)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, want)

		var plainItems []workv1alpha2.AggregatedStatusItem
		native, _ := karmada.ReflectStatus(obj.DeepCopy())
		for _, it := range items {
			it.Status = native
			plainItems = append(plainItems, it)
		}
		plain, err := karmada.AggregateStatus(template.DeepCopy(), plainItems)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, plain)
		if r, _, _ := unstructured.NestedInt64(got.Object, "status", "readyReplicas"); r == 0 {
			t.Fatalf("%s: nothing aggregated: %v", obj.GetKind(), got.Object["status"])
		}
	}
}

func checkpointItem(t testing.TB, cluster string, phase stateshiftv1alpha1.CheckpointPhase) workv1alpha2.AggregatedStatusItem {
	s := checkpoint(phase).Status
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return workv1alpha2.AggregatedStatusItem{ClusterName: cluster, Status: &runtime.RawExtension{Raw: b}, Applied: true}
}

func TestAggregateStatusCheckpoint(t *testing.T) {
	template := manifest(toU(t, checkpoint("")))
	unstructured.RemoveNestedField(template.Object, "status")
	cases := []struct {
		name    string
		items   []workv1alpha2.AggregatedStatusItem
		phase   string
		message string
	}{
		{"no items: unchanged", nil, "", ""},
		{"item without status: unchanged", []workv1alpha2.AggregatedStatusItem{{ClusterName: "m1"}}, "", ""},
		{"item reflected before the agent wrote: unchanged",
			[]workv1alpha2.AggregatedStatusItem{{ClusterName: "m1", Status: &runtime.RawExtension{Raw: []byte("{}")}}}, "", ""},
		{"one reported, one not yet", []workv1alpha2.AggregatedStatusItem{
			{ClusterName: "m0", Status: &runtime.RawExtension{Raw: []byte("{}")}}, checkpointItem(t, "m1", "Pushing")},
			"Pushing", "cluster m1, node node-a: checkpoint Pushing"},
		{"one cluster", []workv1alpha2.AggregatedStatusItem{checkpointItem(t, "m1", "Pushing")},
			"Pushing", "cluster m1, node node-a: checkpoint Pushing"},
		{"several: most advanced wins", []workv1alpha2.AggregatedStatusItem{
			checkpointItem(t, "m3", "Failed"), checkpointItem(t, "m1", "Pending"), checkpointItem(t, "m2", "Succeeded")},
			"Succeeded", "cluster m2, node node-a: checkpoint Succeeded (also reported by m1=Pending, m3=Failed)"},
		{"tie: first cluster by name", []workv1alpha2.AggregatedStatusItem{
			checkpointItem(t, "m2", "Pushing"), checkpointItem(t, "m1", "Pushing")},
			"Pushing", "cluster m1, node node-a: checkpoint Pushing (also reported by m2=Pushing)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, configv1alpha1.InterpreterOperationAggregateStatus, template)
			req.AggregatedStatus = tc.items
			resp := call(t, req)
			got := patched(t, req, resp)
			if tc.phase == "" {
				if len(resp.Patch) != 0 {
					t.Fatalf("patch %s, want none", resp.Patch)
				}
				return
			}
			phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
			message, _, _ := unstructured.NestedString(got.Object, "status", "message")
			images, _, _ := unstructured.NestedSlice(got.Object, "status", "containers")
			if phase != tc.phase || message != tc.message || len(images) != 1 {
				t.Fatalf("phase %q message %q containers %v", phase, message, images)
			}
			spec, _, _ := unstructured.NestedMap(got.Object, "spec")
			want, _, _ := unstructured.NestedMap(template.Object, "spec")
			sameJSON(t, spec, want)
		})
	}
}

func TestAggregateStatusCheckpointBadItem(t *testing.T) {
	req := request(t, configv1alpha1.InterpreterOperationAggregateStatus, toU(t, checkpoint("")))
	req.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{ClusterName: "m1", Status: &runtime.RawExtension{Raw: []byte(`{"phase":3}`)}}}
	if resp := post(t, body(t, req), "application/json"); resp.Successful || resp.Status.Code != 500 {
		t.Fatalf("response %+v", resp)
	}
}
