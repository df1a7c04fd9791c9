package podrestore

import (
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/stateshift/stateshift/pkg/restore"
)

// Outcome is what the webhook did to a pod.
type Outcome string

const (
	// Unchanged: no restore planned, or the template's images are right.
	Unchanged Outcome = "unchanged"
	// PerPod: the pod's own checkpoint images were set.
	PerPod Outcome = "per-pod"
	// Shared: the checkpoint images every pod of the restore restores
	// (stateshift.io/restore-images) were set.
	Shared Outcome = "shared"
	// Cold: the pod starts from the template's original images.
	Cold Outcome = "cold"
)

// Owner is what the webhook knows of the workload creating the pod.
type Owner struct {
	// Kind and Name of the workload (StatefulSet, or the ReplicaSet's
	// Deployment).
	Kind, Name string
	// Annotations of the workload's metadata.
	Annotations map[string]string
}

// Decision says how to change a pod.
type Decision struct {
	Outcome Outcome
	// Images: container -> image to set.
	Images map[string]string
	// Reason explains the outcome; a Cold pod carries it as
	// stateshift.io/cold-start.
	Reason string
	// Restores: container -> checkpoint image the pod will restore, once
	// changed as Images say. The webhook checks each one's origin.
	Restores map[string]string
}

// Decide is the webhook's whole policy, pure so that it can be table
// tested: owner may be nil (a pod without a controller, or its workload
// already gone). An error means the pod's restore annotations are broken;
// the pod is refused rather than started with a state that may not be its
// own.
func Decide(pod *corev1.Pod, owner *Owner) (Decision, error) {
	from, planned := pod.Annotations[restore.AnnotationRestoredFrom]
	if !planned {
		return Decision{Outcome: Unchanged, Reason: "no restore planned"}, nil
	}
	originals, err := restore.OriginalImages(pod.Annotations)
	if err != nil {
		return Decision{}, fmt.Errorf("pod annotation %s: %w", restore.AnnotationOriginalImages, err)
	}
	if len(originals) == 0 {
		return Decision{}, fmt.Errorf("pod annotation %s is missing: cannot tell the restored containers' original images", restore.AnnotationOriginalImages)
	}
	for c := range originals {
		if !hasContainer(pod, c) {
			return Decision{}, fmt.Errorf("pod annotation %s names container %q, the pod has %v", restore.AnnotationOriginalImages, c, containerNames(pod))
		}
	}
	if owner != nil && owner.Annotations[restore.AnnotationRestoreCompleted] == from {
		return Decision{Outcome: Cold, Images: originals, Reason: fmt.Sprintf(
			"%s %s already completed its restore from %s on this cluster (restore once): starting from the template's image",
			owner.Kind, owner.Name, from)}, nil
	}
	if armed, ok := pod.Annotations[restore.AnnotationTemplateGeneration]; ok && owner != nil {
		// Karmada writes the template generation it rendered on the member
		// workload. A plan armed for an older generation reached this
		// cluster in a Work rendered from a newer template (the template
		// changed and Karmada moved the workload before the controller
		// re-armed): the checkpoint is an old version's process.
		if rendered, managed := owner.Annotations[restore.AnnotationKarmadaGeneration]; managed && rendered != armed {
			return Decision{Outcome: Cold, Images: originals, Reason: fmt.Sprintf(
				"the restore plan %s was armed for generation %s of the workload's template in Karmada, this %s %s was rendered from generation %s: starting from the template's image rather than an older version's process",
				from, armed, owner.Kind, owner.Name, rendered)}, nil
		}
	}
	if raw, ok := pod.Annotations[restore.AnnotationSourceImages]; ok {
		var source map[string]string
		if err := json.Unmarshal([]byte(raw), &source); err != nil {
			return Decision{}, fmt.Errorf("pod annotation %s is not a JSON object container -> image: %w", restore.AnnotationSourceImages, err)
		}
		for _, c := range sortedKeys(source) {
			// The template changed after the checkpoint (a new image racing a
			// move): restoring would run the old version's process.
			if now, ok := originals[c]; ok && now != source[c] {
				return Decision{Outcome: Cold, Images: originals, Reason: fmt.Sprintf(
					"checkpoint %s holds container %s of image %s, the pod template now runs %s: starting from the template's image rather than the old version",
					from, c, source[c], now)}, nil
			}
		}
	}
	raw, perPod := pod.Annotations[restore.AnnotationPodImages]
	if !perPod {
		return decideShared(pod, from, originals)
	}
	var pods map[string]map[string]string
	if err := json.Unmarshal([]byte(raw), &pods); err != nil {
		return Decision{}, fmt.Errorf("pod annotation %s is not a JSON object pod -> container -> image: %w", restore.AnnotationPodImages, err)
	}
	mine, ok := pods[pod.Name]
	if !ok || pod.Name == "" {
		// A pod the checkpoints do not cover (a StatefulSet scaled up
		// since): the template's default images are another pod's state.
		return Decision{Outcome: Cold, Images: originals, Reason: fmt.Sprintf(
			"the restore plan %s has no checkpoint of pod %q (it has %v): starting from the template's image", from, pod.Name, sortedKeys(pods))}, nil
	}
	if err := checkImages(restore.AnnotationPodImages+" (pod "+pod.Name+")", mine, originals); err != nil {
		return Decision{}, err
	}
	return Decision{Outcome: PerPod, Images: mine, Restores: mine, Reason: fmt.Sprintf("pod %s restores its own checkpoint (plan %s)", pod.Name, from)}, nil
}

// decideShared gives a pod the images every pod of the restore restores
// (restore-images). A template rewritten before that annotation existed
// runs the checkpoint images itself: the pod is left as it is.
func decideShared(pod *corev1.Pod, from string, originals map[string]string) (Decision, error) {
	shared, err := restore.RestoreImages(pod.Annotations)
	if err != nil {
		return Decision{}, fmt.Errorf("pod annotation %s: %w", restore.AnnotationRestoreImages, err)
	}
	if shared == nil {
		restores := map[string]string{}
		for _, c := range pod.Spec.Containers {
			if _, ok := originals[c.Name]; ok {
				restores[c.Name] = c.Image
			}
		}
		return Decision{Outcome: Unchanged, Reason: "every pod restores " + from, Restores: restores}, nil
	}
	if err := checkImages(restore.AnnotationRestoreImages, shared, originals); err != nil {
		return Decision{}, err
	}
	return Decision{Outcome: Shared, Images: shared, Restores: shared, Reason: "every pod restores " + from}, nil
}

// checkImages checks a map container -> checkpoint image read from
// annotation key: every container is a restored one (named in
// original-images), every image is pinned by digest.
func checkImages(key string, images, originals map[string]string) error {
	if len(images) == 0 {
		return fmt.Errorf("pod annotation %s names no container", key)
	}
	for _, c := range sortedKeys(images) {
		if _, restored := originals[c]; !restored {
			return fmt.Errorf("pod annotation %s: container %q is not a restored container (%v)", key, c, sortedKeys(originals))
		}
		if err := restore.CheckDigestImage(images[c]); err != nil {
			return fmt.Errorf("pod annotation %s: container %q: %w", key, c, err)
		}
	}
	return nil
}

// Apply returns a copy of pod changed as d says. A Cold pod loses the
// restore annotations (it is not restored; kubectl describe shows why in
// stateshift.io/cold-start); a PerPod or Shared pod records its images and
// pulls them IfNotPresent. The pod-images and restore-images maps are
// dropped from the pod either way: they are the template's.
func Apply(pod *corev1.Pod, d Decision) (*corev1.Pod, error) {
	out := pod.DeepCopy()
	if d.Outcome == Unchanged {
		return out, nil
	}
	for i := range out.Spec.Containers {
		c := &out.Spec.Containers[i]
		image, ok := d.Images[c.Name]
		if !ok {
			continue
		}
		if d.Outcome != Cold && c.Image != image {
			// Pinned by digest: pulling it again on every start would
			// only add latency.
			c.ImagePullPolicy = corev1.PullPolicy(restore.PullPolicy)
		}
		c.Image = image
	}
	delete(out.Annotations, restore.AnnotationPodImages)
	delete(out.Annotations, restore.AnnotationRestoreImages)
	switch d.Outcome {
	case Cold:
		delete(out.Annotations, restore.AnnotationRestoredFrom)
		delete(out.Annotations, restore.AnnotationOriginalImages)
		delete(out.Annotations, restore.AnnotationSourceImages)
		delete(out.Annotations, restore.AnnotationTemplateGeneration)
		out.Annotations[restore.AnnotationColdStart] = d.Reason
	case PerPod, Shared:
		raw, err := json.Marshal(d.Images)
		if err != nil {
			return nil, err
		}
		out.Annotations[restore.AnnotationRestoredImages] = string(raw)
	}
	return out, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func containerNames(pod *corev1.Pod) []string {
	out := make([]string, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		out = append(out, c.Name)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
