package restore

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
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
