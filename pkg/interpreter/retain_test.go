package interpreter

import (
	"strings"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stateshift/stateshift/pkg/restore"
)

func retainRequest(t testing.TB, desired, observed *unstructured.Unstructured) configv1alpha1.ResourceInterpreterRequest {
	req := request(t, configv1alpha1.InterpreterOperationRetain, desired)
	o := raw(t, observed)
	req.ObservedObject = &o
	return req
}

// manifest is what Karmada's Work carries: no status, no resourceVersion.
func manifest(u *unstructured.Unstructured) *unstructured.Unstructured {
	m := u.DeepCopy()
	unstructured.RemoveNestedField(m.Object, "status")
	m.SetResourceVersion("")
	m.SetUID("")
	return m
}

// Without stateshift annotations, Retain is Karmada's: for a Deployment
// the retain-replicas label keeps the member's replicas; for a StatefulSet
// Karmada retains nothing.
func TestRetainIsKarmadasWithoutMigration(t *testing.T) {
	for _, obj := range workloads(t) {
		desired := manifest(obj)
		desired.SetLabels(map[string]string{"resourcetemplate.karmada.io/retain-replicas": "true"})
		_ = unstructured.SetNestedField(desired.Object, int64(9), "spec", "replicas")
		req := retainRequest(t, desired, obj)
		got := patched(t, req, call(t, req))
		want, err := nativeRetain(desired.DeepCopy(), obj.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, want)
		replicas, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas")
		if obj.GetKind() == "Deployment" && replicas != 2 || obj.GetKind() == "StatefulSet" && replicas != 9 {
			t.Fatalf("%s replicas %d", obj.GetKind(), replicas)
		}
	}
}

// With a restored member and the plan withdrawn, exactly the restore is
// kept, plus the agent's annotations, and the restore is recorded as
// completed (restore once).
func TestRetainKeepsRestore(t *testing.T) {
	plan := restore.Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptImage}}
	for _, obj := range workloads(t) {
		template := manifest(obj)
		restored, err := restore.Rewrite(template, plan)
		if err != nil {
			t.Fatal(err)
		}
		observed := withAnnotations(restored, map[string]string{restore.AnnotationLatestCheckpoint: "db-0-ckpt-2"})
		_ = unstructured.SetNestedField(observed.Object, int64(3), "status", "readyReplicas")

		req := retainRequest(t, template, observed)
		got := patched(t, req, call(t, req))
		sameJSON(t, got, withAnnotations(restored, map[string]string{
			restore.AnnotationLatestCheckpoint: "db-0-ckpt-2", restore.AnnotationRestoreCompleted: plan.Checkpoint,
		}))

		// A restore the runtime refused never came up (no ready replica,
		// never recorded complete): withdrawing its plan brings the
		// workload back to its own images, cold.
		refused := restored.DeepCopy()
		_ = unstructured.SetNestedField(refused.Object, int64(0), "status", "readyReplicas")
		req = retainRequest(t, template, refused)
		got = patched(t, req, call(t, req))
		// The template names the restore's images in an annotation (its
		// containers keep their own): kept means the annotation stays.
		restoring := func(u *unstructured.Unstructured) string {
			a, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "annotations")
			return a[restore.AnnotationRestoreImages]
		}
		if r := restoring(got); strings.Contains(r, ckptImage) {
			t.Errorf("%s: a refused restore was kept (restore-images %s)", obj.GetKind(), r)
		}
		if _, ok := got.GetAnnotations()[restore.AnnotationRestoreCompleted]; ok {
			t.Errorf("%s: a refused restore was recorded complete", obj.GetKind())
		}
		// Once recorded complete, a restore stays kept even when a replica
		// is lost later (restore once: new pods start cold, the running
		// restored ones are not rolled).
		completed := withAnnotations(refused, map[string]string{restore.AnnotationRestoreCompleted: plan.Checkpoint})
		req = retainRequest(t, template, completed)
		got = patched(t, req, call(t, req))
		if r := restoring(got); !strings.Contains(r, ckptImage) {
			t.Errorf("%s: a completed restore was rolled back (restore-images %q)", obj.GetKind(), r)
		}

		// The user changes the image: their change wins.
		changed := template.DeepCopy()
		containers, _, _ := unstructured.NestedSlice(changed.Object, "spec", "template", "spec", "containers")
		containers[0].(map[string]interface{})["image"] = "registry.example.com/team/db:1.5.0"
		_ = unstructured.SetNestedSlice(changed.Object, containers, "spec", "template", "spec", "containers")
		req = retainRequest(t, changed, observed)
		got = patched(t, req, call(t, req))
		sameJSON(t, got, withAnnotations(changed, map[string]string{restore.AnnotationLatestCheckpoint: "db-0-ckpt-2"}))
	}
}

func TestRetainBadObserved(t *testing.T) {
	desired := manifest(toU(t, statefulSet()))
	req := request(t, configv1alpha1.InterpreterOperationRetain, desired)
	if resp := post(t, body(t, req), "application/json"); resp.Successful || resp.Status.Code != 400 {
		t.Fatalf("no observed: %+v", resp)
	}
	req = retainRequest(t, desired, toU(t, deployment()))
	if resp := post(t, body(t, req), "application/json"); resp.Successful || resp.Status.Code != 400 {
		t.Fatalf("observed of another kind: %+v", resp)
	}
}

// TestRetainKeepsPlanPullSecret: through the webhook, a withdrawn plan's
// pull Secret stays in the restored member's imagePullSecrets (after the
// workload's own), so the withdrawal does not change the pod template.
func TestRetainKeepsPlanPullSecret(t *testing.T) {
	plan := restore.Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptImage}, PullSecret: "ckpt-pull"}
	for _, obj := range workloads(t) {
		template := manifest(obj)
		own := []interface{}{map[string]interface{}{"name": "team-images"}}
		if err := unstructured.SetNestedSlice(template.Object, own, "spec", "template", "spec", "imagePullSecrets"); err != nil {
			t.Fatal(err)
		}
		restored, err := restore.Rewrite(template, plan)
		if err != nil {
			t.Fatal(err)
		}
		observed := restored.DeepCopy()
		_ = unstructured.SetNestedField(observed.Object, int64(3), "status", "readyReplicas")

		req := retainRequest(t, template, observed)
		got := patched(t, req, call(t, req))
		sameJSON(t, got, withAnnotations(restored, map[string]string{restore.AnnotationRestoreCompleted: plan.Checkpoint}))
		secrets, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "imagePullSecrets")
		if len(secrets) != 2 || secrets[0].(map[string]interface{})["name"] != "team-images" || secrets[1].(map[string]interface{})["name"] != "ckpt-pull" {
			t.Fatalf("%s: imagePullSecrets = %v", obj.GetKind(), secrets)
		}
	}
}
