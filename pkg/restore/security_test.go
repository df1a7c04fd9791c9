package restore

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// managedBy adds what Karmada writes on every manifest it renders: the
// list of the template's annotation keys.
func managedBy(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	keys := annotationManagedByKarmada
	for k := range a {
		keys += "," + k
	}
	a[annotationManagedByKarmada] = keys
	u.SetAnnotations(a)
	return u
}

// forge plays a member user who edits the member's workload: workload and
// pod-template annotations, and the app container's image.
func forge(t *testing.T, u *unstructured.Unstructured, top, template map[string]string, image string) *unstructured.Unstructured {
	t.Helper()
	u = u.DeepCopy()
	a := u.GetAnnotations()
	for k, v := range top {
		a[k] = v
	}
	u.SetAnnotations(a)
	ta, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "annotations")
	for k, v := range template {
		ta[k] = v
	}
	if err := unstructured.SetNestedStringMap(u.Object, ta, "spec", "template", "metadata", "annotations"); err != nil {
		t.Fatal(err)
	}
	if image != "" {
		setContainer(u, 0, "image", image)
	}
	return u
}

// TestSecurityRetainDoesNotPinMemberDrift: Retain carries over only what
// stateshift writes on a member and only a restore stateshift made: a
// stateshift.io/ key a member user adds is dropped, and a forged restore
// record (to keep a swapped image, or with a checkpoint name that is not
// one) does not make Karmada keep the member's template.
func TestSecurityRetainDoesNotPinMemberDrift(t *testing.T) {
	template := managedBy(toU(t, statefulSet()))
	originals, _ := json.Marshal(map[string]string{"app": appImage, "sidecar": sidecarImage})
	record := func(from string) map[string]string {
		return map[string]string{AnnotationRestoredFrom: from, AnnotationOriginalImages: string(originals)}
	}

	pinned := forge(t, member(t, template), map[string]string{Prefix + "pin": "x", AnnotationRestoreCompleted: "db-0-ckpt-1"}, nil, "")
	got := retain(t, karmadaRetained(template, pinned), pinned)
	a := got.GetAnnotations()
	if _, ok := a[Prefix+"pin"]; ok || a[AnnotationRestoreCompleted] != "" {
		t.Errorf("member-added stateshift keys kept: %v", a)
	}
	if a[AnnotationLatestCheckpoint] != agentCheckpoint || a["team"] != "payments" {
		t.Errorf("the agent's or the template's annotations lost: %v", a)
	}

	for name, observed := range map[string]*unstructured.Unstructured{
		"a swapped image by tag": forge(t, member(t, template), record("db-0-ckpt-1"), map[string]string{AnnotationRestoredFrom: "db-0-ckpt-1"},
			"evil.example.com/miner:latest"),
		"an invalid checkpoint name":           forge(t, member(t, template), record("../../x"), map[string]string{AnnotationRestoredFrom: "../../x"}, ckptApp),
		"a template naming another checkpoint": forge(t, member(t, template), record("db-0-ckpt-1"), map[string]string{AnnotationRestoredFrom: "db-0-ckpt-2"}, ckptApp),
	} {
		got := retain(t, karmadaRetained(template, observed), observed)
		containers, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
		if image := containers[0].(map[string]interface{})["image"]; image != appImage {
			t.Errorf("%s: the member's image %v was kept", name, image)
		}
		for _, k := range restoreKeys {
			if _, ok := got.GetAnnotations()[k]; ok {
				t.Errorf("%s: restore key %s kept: %v", name, k, got.GetAnnotations())
			}
		}
	}

	// stateshift's own restore is kept, without a key a member user added
	// to its pod template.
	restored, err := Rewrite(template, Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}})
	if err != nil {
		t.Fatal(err)
	}
	observed := forge(t, member(t, restored), nil, map[string]string{Prefix + "pin": "x"}, "")
	got = retain(t, karmadaRetained(template, observed), observed)
	ta, _, _ := unstructured.NestedStringMap(got.Object, "spec", "template", "metadata", "annotations")
	if ta[AnnotationRestoredFrom] != "db-0-ckpt-1" || ta[Prefix+"pin"] != "" {
		t.Errorf("own restore: template annotations %v", ta)
	}
}

func retain(t *testing.T, desired, observed *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	got, err := Retain(desired, observed)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
