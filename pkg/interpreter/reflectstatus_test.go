package interpreter

import (
	"encoding/json"
	"reflect"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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

func TestInterpretStatusCheckpointIsWholeStatus(t *testing.T) {
	obj := toU(t, checkpoint("Pushing"))
	resp := call(t, request(t, configv1alpha1.InterpreterOperationInterpretStatus, obj))
	status, _, _ := unstructured.NestedMap(obj.Object, "status")
	sameJSON(t, decodeStatus(t, resp.RawStatus.Raw), status)
}
