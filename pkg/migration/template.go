package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// AnnotationTemplateHash on a Checkpoint is the hash of the workload's pod
// template (TemplateHash): only checkpoints of the current template are
// armed (restoring one into another would bring back the old version).
// AnnotationTemplateImages carries the template's images, so the member
// can refuse to restore a checkpoint into a template that runs others.
const (
	AnnotationTemplateHash   = v1alpha1.AnnotationTemplateHash
	AnnotationTemplateImages = v1alpha1.AnnotationTemplateImages
)

// TemplateImages reads the container images of a workload's pod template.
func TemplateImages(u *unstructured.Unstructured) map[string]string {
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	out := make(map[string]string, len(containers))
	for _, c := range containers {
		if m, ok := c.(map[string]interface{}); ok {
			name, _ := m["name"].(string)
			image, _ := m["image"].(string)
			out[name] = image
		}
	}
	return out
}

// sourceImages reads a Checkpoint's AnnotationTemplateImages for the
// containers it checkpointed; nil when absent or unreadable.
func sourceImages(c *v1alpha1.Checkpoint) map[string]string {
	var all map[string]string
	if json.Unmarshal([]byte(c.Annotations[AnnotationTemplateImages]), &all) != nil {
		return nil
	}
	out := map[string]string{}
	for _, cc := range c.Status.Containers {
		if image := all[cc.Name]; image != "" {
			out[cc.Name] = image
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// TemplateHash is a short, stable hash of a workload template's
// spec.template as the user wrote it in the Karmada API (the restore
// rewrite happens in an OverridePolicy, never there). encoding/json sorts
// map keys, so equal templates hash equal.
func TemplateHash(u *unstructured.Unstructured) string {
	t, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "template")
	raw, _ := json.Marshal(t)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// OfTemplate keeps the Checkpoints taken under the template with hash h.
func OfTemplate(cps []v1alpha1.Checkpoint, h string) []v1alpha1.Checkpoint {
	return filterCheckpoints(cps, func(c *v1alpha1.Checkpoint) bool { return c.Annotations[AnnotationTemplateHash] == h })
}

// PodRunsTemplate says whether a running pod was created from the
// template's current images: during a rollout the old pods still run, and
// a checkpoint of one of them must not be taken as the new template's. A
// restored pod runs a checkpoint image; what it was created from is its
// recorded original image.
func PodRunsTemplate(pod *corev1.Pod, u *unstructured.Unstructured) bool {
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	want := make(map[string]string, len(containers))
	for _, c := range containers {
		m, ok := c.(map[string]interface{})
		if !ok {
			return false
		}
		name, _ := m["name"].(string)
		image, _ := m["image"].(string)
		want[name] = image
	}
	return podRunsImages(pod, want)
}

// podRunsImages is PodRunsTemplate for a template's images by container
// name (TemplateImages).
func podRunsImages(pod *corev1.Pod, want map[string]string) bool {
	var originals map[string]string
	if _, restored := pod.Annotations[restore.AnnotationRestoredFrom]; restored {
		originals, _ = restore.OriginalImages(pod.Annotations)
	}
	running := map[string]string{}
	for _, c := range pod.Spec.Containers {
		running[c.Name] = c.Image
		if o, ok := originals[c.Name]; ok {
			running[c.Name] = o
		}
	}
	for name, image := range want {
		if got, ok := running[name]; !ok || got != image {
			return false
		}
	}
	return true
}

func templateImagesJSON(u *unstructured.Unstructured) string {
	raw, _ := json.Marshal(TemplateImages(u)) // map keys sorted: stable
	return string(raw)
}
