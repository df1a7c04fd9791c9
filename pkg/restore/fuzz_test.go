package restore

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FuzzRewrite: whatever the plan, Rewrite never panics; when it accepts
// the plan, the result is a fixed point and the JSON-patch form agrees.
func FuzzRewrite(f *testing.F) {
	f.Add("db-0-ckpt-1", "app", ckptApp, "db-0", ckptApp0, "", "")
	f.Add("c", "sidecar", "registry.example.com/x:tag@sha256:1111111111111111111111111111111111111111111111111111111111111111", "", "", "", "")
	f.Add("", "app", "not an image", "p", "x", "", "")
	f.Add("UPPER", "nope", ckptSidecar, "db-1", ckptSidecar, "", "")
	f.Add("db-0-ckpt-1", "app", ckptApp, "", "", "ckpt-pull", "team-images")
	f.Add("db-0-ckpt-1", "app", ckptApp, "", "", "ckpt-pull", "ckpt-pull")
	f.Add("db-0-ckpt-1", "app", ckptApp, "", "", "Bad_Name", "")
	// pullSecret is the plan's; ownSecret one the workload lists itself.
	f.Fuzz(func(t *testing.T, checkpoint, container, image, pod, podImage, pullSecret, ownSecret string) {
		p := Plan{Checkpoint: checkpoint, Containers: map[string]string{container: image}, PullSecret: pullSecret}
		if pod != "" {
			p.Pods = map[string]map[string]string{pod: {container: podImage}}
		}
		sts := statefulSet()
		if ownSecret != "" {
			sts.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: ownSecret}}
		}
		obj := toU(t, sts)
		out, err := Rewrite(obj, p)
		if err != nil {
			return
		}
		again, err := Rewrite(out, p)
		if err != nil {
			t.Fatalf("second rewrite: %v", err)
		}
		assertEqual(t, again, out)
		ops, err := Patches(obj, p)
		if err != nil {
			t.Fatalf("patches: %v", err)
		}
		assertEqual(t, applyOps(t, obj, ops), out)
	})
}

// FuzzWorkloadManifest: whatever a StatefulSet manifest holds, every entry
// point answers with a result or an error, never a panic; when Rewrite
// accepts it, the JSON-patch form agrees.
func FuzzWorkloadManifest(f *testing.F) {
	for _, doc := range []string{
		`{"spec":{"template":{"spec":{"containers":"app"}}}}`,
		`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":3}]}}}}`,
		`{"spec":{"template":{"metadata":null,"spec":{"containers":[{"name":"app","image":"x","f":[1]}],"imagePullSecrets":[null]}}}}`,
		`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":"1"}}}}`,
		`{"metadata":{"annotations":{"stateshift.io/pull-secret":"ckpt-pull"}},"spec":null}`,
	} {
		f.Add([]byte(doc))
	}
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull", KeepPods: 1}
	f.Fuzz(func(t *testing.T, doc []byte) {
		obj := &unstructured.Unstructured{}
		if json.Unmarshal(doc, &obj.Object) != nil || obj.Object == nil {
			return
		}
		obj.SetAPIVersion("apps/v1")
		obj.SetKind("StatefulSet")
		good := toU(t, statefulSet())
		_, _ = Retain(obj, good)
		_, _ = Retain(good, obj)
		_, _ = KeepRestored(good, obj)
		out, err := Rewrite(obj, plan)
		ops, patchErr := Patches(obj, plan)
		if (err == nil) != (patchErr == nil) {
			t.Fatalf("Rewrite error %v, Patches error %v", err, patchErr)
		}
		if err == nil {
			assertEqual(t, applyOps(t, obj, ops), out)
		}
	})
}
