package interpreter

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

func withAnnotations(u *unstructured.Unstructured, kv map[string]string) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range kv {
		a[k] = v
	}
	u.SetAnnotations(a)
	return u
}

func decodeStatus(t testing.TB, raw []byte) map[string]interface{} {
	t.Helper()
	m := map[string]interface{}{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("status %s: %v", raw, err)
	}
	return m
}

// Without stateshift annotations the reflected status is Karmada's, byte
// for byte.
func TestInterpretStatusIsKarmadasWithoutMigration(t *testing.T) {
	for _, obj := range workloads(t) {
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj))
		want, err := karmada.ReflectStatus(obj.DeepCopy())
		if err != nil || want == nil {
			t.Fatalf("native: %v %v", want, err)
		}
		if resp.RawStatus == nil || !reflect.DeepEqual(decodeStatus(t, resp.RawStatus.Raw), decodeStatus(t, want.Raw)) {
			t.Fatalf("%s: status %v, want %s", obj.GetKind(), resp.RawStatus, want.Raw)
		}
	}
}

// With them, exactly a stateshift block is added to Karmada's status: the
// restore the member workload carries. latestCheckpoint* is not reflected
// (issue 11 defect 9): nothing writes those annotations, so a status that
// read them would claim a state that is never there.
func TestInterpretStatusAddsMigrationState(t *testing.T) {
	images := `{"app":"` + ckptImage + `"}`
	for _, obj := range workloads(t) {
		annotated := withAnnotations(obj, map[string]string{
			restore.AnnotationLatestCheckpoint:       "db-0-ckpt-7",
			restore.AnnotationLatestCheckpointImages: images,
			restore.AnnotationLatestCheckpointTime:   "2026-11-26T07:00:00Z",
			restore.AnnotationRestoredFrom:           "db-0-ckpt-6",
		})
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, annotated))
		native, err := karmada.ReflectStatus(obj.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		want := decodeStatus(t, native.Raw)
		want["stateshift"] = map[string]interface{}{"restoredFrom": "db-0-ckpt-6"}
		if got := decodeStatus(t, resp.RawStatus.Raw); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: status %s, want %v", obj.GetKind(), resp.RawStatus.Raw, want)
		}
	}
}

// A member without status yet: Karmada reports nothing; the migration
// state alone is still reported.
func TestInterpretStatusWithoutStatus(t *testing.T) {
	obj := toU(t, statefulSet())
	unstructured.RemoveNestedField(obj.Object, "status")
	resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj))
	if resp.RawStatus != nil {
		t.Fatalf("status %s, want none (as Karmada)", resp.RawStatus.Raw)
	}
	resp = call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus,
		withAnnotations(obj, map[string]string{restore.AnnotationRestoredFrom: "c1"})))
	if got := string(resp.RawStatus.Raw); got != `{"stateshift":{"restoredFrom":"c1"}}` {
		t.Fatalf("status %s", got)
	}
}

// Karmada's own error (member object without its generation annotation)
// comes back as an unsuccessful response.
func TestInterpretStatusNativeError(t *testing.T) {
	obj := toU(t, statefulSet())
	obj.SetAnnotations(nil)
	_, nativeErr := karmada.ReflectStatus(obj.DeepCopy())
	resp := post(t, body(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj)), "application/json")
	if nativeErr == nil || resp.Successful || resp.Status.Code != 500 {
		t.Fatalf("native %v, response %+v", nativeErr, resp)
	}
}

// A Checkpoint no agent has written yet reflects as an empty status:
// Karmada refuses a webhook's nil status (ReflectStatusFailed, retried).
func TestInterpretStatusCheckpointWithoutStatus(t *testing.T) {
	obj := toU(t, checkpoint(""))
	unstructured.RemoveNestedField(obj.Object, "status")
	resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj))
	if resp.RawStatus == nil || string(resp.RawStatus.Raw) != "{}" {
		t.Fatalf("reflected %+v, want {}", resp.RawStatus)
	}
}

// A waiting or finished Checkpoint's status reaches Karmada whole.
func TestInterpretStatusCheckpointWaitingOrFinishedIsWholeStatus(t *testing.T) {
	for _, phase := range []stateshiftv1alpha1.CheckpointPhase{"", "Pending", "Succeeded", "Failed"} {
		obj := toU(t, checkpoint(phase))
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj))
		status, _, _ := unstructured.NestedMap(obj.Object, "status")
		sameJSON(t, decodeStatus(t, resp.RawStatus.Raw), status)
	}
}

// A running attempt reaches Karmada as its claim only: its stages
// (checkpointed, pushing) reflect the same status, so Karmada writes
// nothing for them.
func TestInterpretStatusCheckpointRunningIsTheClaim(t *testing.T) {
	started := metav1.NewTime(time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC))
	stray := []stateshiftv1alpha1.StrayImage{{Container: "app", Image: ckptImage, Reason: "Interrupted"}}
	reflected := map[stateshiftv1alpha1.CheckpointPhase][]byte{}
	for _, phase := range []stateshiftv1alpha1.CheckpointPhase{"Checkpointing", "Pushing"} {
		cp := checkpoint(phase)
		cp.Status.StartTime, cp.Status.LastAttemptTime, cp.Status.StrayImages = &started, &started, stray
		if phase == "Pushing" {
			cp.Status.Timings.Checkpoint = &metav1.Duration{Duration: time.Second}
			cp.Status.Conditions = []metav1.Condition{{Type: "Checkpointed", Status: metav1.ConditionTrue, Reason: "Checkpointed", LastTransitionTime: started}}
		}
		resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, toU(t, cp)))
		reflected[phase] = resp.RawStatus.Raw
		var got stateshiftv1alpha1.CheckpointStatus
		if err := json.Unmarshal(resp.RawStatus.Raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Phase != "Checkpointing" || got.NodeName != "node-a" || got.Attempts != 1 || !got.StartTime.Equal(&started) ||
			len(got.StrayImages) != 1 || len(got.Containers) != 0 || got.ArchiveBytes != 0 || len(got.Conditions) != 0 {
			t.Errorf("%s reflected as %s", phase, resp.RawStatus.Raw)
		}
	}
	if string(reflected["Checkpointing"]) != string(reflected["Pushing"]) {
		t.Errorf("the stages of one attempt reflect differently:\n%s\n%s", reflected["Checkpointing"], reflected["Pushing"])
	}
}
