package restore

import (
	"testing"
)

// FuzzRewrite: whatever the plan, Rewrite never panics; when it accepts
// the plan, the result is a fixed point and the JSON-patch form agrees.
func FuzzRewrite(f *testing.F) {
	f.Add("db-0-ckpt-1", "app", ckptApp, "db-0", ckptApp0)
	f.Add("c", "sidecar", "registry.example.com/x:tag@sha256:1111111111111111111111111111111111111111111111111111111111111111", "", "")
	f.Add("", "app", "not an image", "p", "x")
	f.Add("UPPER", "nope", ckptSidecar, "db-1", ckptSidecar)
	f.Fuzz(func(t *testing.T, checkpoint, container, image, pod, podImage string) {
		p := Plan{Checkpoint: checkpoint, Containers: map[string]string{container: image}}
		if pod != "" {
			p.Pods = map[string]map[string]string{pod: {container: podImage}}
		}
		obj := toU(t, statefulSet())
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
