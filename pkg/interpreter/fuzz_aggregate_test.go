package interpreter

import (
	"encoding/json"
	"strings"
	"testing"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// FuzzAggregateCheckpointStatus: whatever the members report (any bytes,
// any cluster names), aggregating a Checkpoint's status never panics;
// when it succeeds, the result does not depend on the order Karmada lists
// the clusters in, its phase is one a member reported, and its message
// names the cluster whose status won (an operator reads it to find the
// node that holds the archive).
func FuzzAggregateCheckpointStatus(f *testing.F) {
	f.Add("member1", `{"phase":"Succeeded","nodeName":"n1","containers":[{"name":"app","image":"r.example/x@sha256:`+strings.Repeat("a", 64)+`","archiveBytes":1}]}`,
		"member2", `{"phase":"Failed","message":"no"}`)
	f.Add("m", `{"phase":"Pushing"}`, "m", `{"phase":"Pushing","message":"same name"}`)
	f.Add("", `{}`, "x", `null`)
	f.Add("a", `{"phase":"Bogus"}`, "b", `{"phase":1}`)
	f.Add("a", `not json`, "b", ``)
	f.Fuzz(func(t *testing.T, c1, s1, c2, s2 string) {
		items := []workv1alpha2.AggregatedStatusItem{
			{ClusterName: c1, Status: rawOrNil(s1), Applied: true},
			{ClusterName: c2, Status: rawOrNil(s2), Applied: true},
		}
		obj := toU(t, checkpoint(""))
		got, err := aggregateCheckpointStatus(obj.DeepCopy(), items)
		reversed, errReversed := aggregateCheckpointStatus(obj.DeepCopy(), []workv1alpha2.AggregatedStatusItem{items[1], items[0]})
		if err != nil || errReversed != nil {
			if err == nil || errReversed == nil {
				t.Fatalf("one order fails, the other not: %v / %v", err, errReversed)
			}
			return
		}
		if c1 != c2 && !equalObjects(got, reversed) {
			t.Fatalf("the order of the clusters changes the result:\n%v\n%v", got.Object["status"], reversed.Object["status"])
		}
		checkAggregate(t, obj, got, items)
	})
}

func rawOrNil(s string) *runtime.RawExtension {
	if s == "" {
		return nil
	}
	return &runtime.RawExtension{Raw: []byte(s)}
}

func equalObjects(a, b *unstructured.Unstructured) bool {
	ja, _ := json.Marshal(a.Object)
	jb, _ := json.Marshal(b.Object)
	return string(ja) == string(jb)
}

// checkAggregate: with no report the Checkpoint is unchanged; otherwise
// the aggregated phase was reported by a member, and the message starts
// with that member's cluster. An empty status ({} or null: reflected
// before the agent wrote one) is no report.
func checkAggregate(t *testing.T, obj, got *unstructured.Unstructured, items []workv1alpha2.AggregatedStatusItem) {
	t.Helper()
	phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
	message, _, _ := unstructured.NestedString(got.Object, "status", "message")
	reported, anyReport := false, false
	for _, it := range items {
		if it.Status == nil || len(it.Status.Raw) == 0 {
			continue
		}
		var s stateshiftv1alpha1.CheckpointStatus
		if json.Unmarshal(it.Status.Raw, &s) != nil {
			t.Fatalf("aggregated although %s reported no status: %q", it.ClusterName, it.Status.Raw)
		}
		if equality.Semantic.DeepEqual(s, stateshiftv1alpha1.CheckpointStatus{}) {
			continue
		}
		anyReport = true
		if string(s.Phase) == phase && strings.HasPrefix(message, "cluster "+it.ClusterName) {
			reported = true
		}
	}
	if !anyReport && !equalObjects(obj, got) {
		t.Fatalf("no member reported, yet the status changed: %v", got.Object["status"])
	}
	if anyReport && !reported {
		t.Fatalf("phase %q with message %q was reported by no member: %+v", phase, message, items)
	}
}
