package podrestore

import (
	"strings"
	"testing"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/pkg/restore"
)

// FuzzDecide feeds the pod-restore decision arbitrary restore annotations
// (a pod's author writes them): it never panics, a per-pod or shared image
// is always by digest and of a restored container, and every image the pod would
// restore is in Restores, where the webhook checks its origin.
func FuzzDecide(f *testing.F) {
	p := restoredPod("db-0", nil)
	f.Add(p.Annotations[restore.AnnotationOriginalImages], p.Annotations[restore.AnnotationPodImages], "", "db-0", "", "", p.Annotations[restore.AnnotationRestoreImages])
	f.Add(`{"app":"x"}`, `{"db-0":{"app":"a@sha256:`+strings.Repeat("0", 64)+`"}}`, `{"app":"y"}`, "db-0", "db-0-ckpt", "3", "")
	f.Add(`{`, `[]`, `null`, "", "", "", `{`)
	f.Add(`{"app":""}`, `{"":{}}`, `{"app":"x"}`, "db-9", "x", "x", `{"app":"a@sha256:`+strings.Repeat("1", 64)+`"}`)
	f.Add(`{"app":"x"}`, "", "", "web-1", "", "", `{"app":"a:latest"}`)
	f.Fuzz(func(t *testing.T, originals, podImages, sourceImages, podName, completed, generation, restoreImages string) {
		// An empty value leaves the annotation out (restoredPod's rule).
		pod := restoredPod(podName, map[string]string{
			restore.AnnotationOriginalImages: originals,
			restore.AnnotationPodImages:      podImages,
			restore.AnnotationSourceImages:   sourceImages,
			restore.AnnotationRestoreImages:  restoreImages,
		})
		if generation != "" {
			pod.Annotations[restore.AnnotationTemplateGeneration] = generation
		}
		owner := &Owner{Kind: "StatefulSet", Name: "db", Annotations: map[string]string{restore.AnnotationRestoreCompleted: completed}}
		d, err := Decide(pod, owner)
		if err != nil {
			return
		}
		out, err := Apply(pod, d)
		if err != nil {
			t.Fatalf("Apply after a successful Decide: %v", err)
		}
		if d.Outcome == PerPod || d.Outcome == Shared {
			for c, img := range d.Images {
				if err := restore.CheckDigestImage(img); err != nil {
					t.Fatalf("%s image %q of %s is not by digest: %v", d.Outcome, img, c, err)
				}
			}
		}
		if d.Outcome != Cold {
			for _, c := range out.Spec.Containers {
				if _, restored := d.Restores[c.Name]; !restored {
					continue
				}
				if d.Restores[c.Name] != c.Image {
					t.Fatalf("container %s runs %s but the webhook would check %s", c.Name, c.Image, d.Restores[c.Name])
				}
			}
		}
		if d.Outcome == Cold && len(d.Restores) != 0 {
			t.Fatalf("a cold start restores %v", d.Restores)
		}
	})
}

// FuzzCheckOrigin: only an image recorded in the pod's namespace, of the
// same container, is admitted.
func FuzzCheckOrigin(f *testing.F) {
	f.Add("shop", "app", "shop", "app", true)
	f.Add("shop", "app", "other", "app", true)
	f.Add("shop", "app", "", "", false)
	f.Fuzz(func(t *testing.T, ns, container, recordedNS, recordedContainer string, annotate bool) {
		a := map[string]string{}
		if annotate {
			a = checkpointimage.Annotations(checkpointimage.Source{Container: recordedContainer, Namespace: recordedNS})
		}
		err := CheckOrigin(ns, container, "r/x@sha256:"+strings.Repeat("1", 64), a)
		if err == nil && (a[checkpointimage.AnnotationNamespace] != ns || ns == "" || a[checkpointimage.AnnotationCRIO] != container) {
			t.Fatalf("admitted %v for a pod of %q container %q", a, ns, container)
		}
		if err != nil && annotate && recordedNS == ns && ns != "" && recordedContainer == container {
			t.Fatalf("refused its own image: %v", err)
		}
	})
}
