package restore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PullPolicy is set on restored containers (by the member's pod-restore
// webhook): the checkpoint image is pinned by digest, so pulling it again
// on every start would only add latency.
const PullPolicy = "IfNotPresent"

// rewrite is what a plan changes in one workload, computed once and then
// either applied (Rewrite) or expressed as JSON-patch operations (Patches).
type rewrite struct {
	// index of each planned container in the template's containers, and
	// the checkpoint image it gets.
	index  map[string]int
	images map[string]string
	// annotation values written on the workload and on the template.
	restoredFrom   string
	originalImages string
	restoreImages  string // rw.images as JSON
	// originals: container -> the image it had before any restore; the
	// template runs these (a template an older version rewrote ran the
	// checkpoint images).
	originals    map[string]string
	podImages    string // empty: remove any
	sourceImages string // empty: remove any
	generation   string // empty: remove any
	// keepPods is Plan.KeepPods: the StatefulSet pods that stay (partition).
	keepPods int32
	// pullSecret is the change to the template's imagePullSecrets.
	pullSecret pullSecretChange
}

// optional are the pod-template annotations a plan may or may not carry:
// set when the plan has them, removed when a previous rewrite left them.
func (rw *rewrite) optional() map[string]string {
	return map[string]string{AnnotationPodImages: rw.podImages, AnnotationSourceImages: rw.sourceImages, AnnotationTemplateGeneration: rw.generation,
		AnnotationPullSecret: rw.pullSecret.record}
}

// plan computes the rewrite of plan p for workload w.
func plan(w *workload, p Plan) (*rewrite, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	containers := w.template().Spec.Containers
	names := make([]string, 0, len(containers))
	index := make(map[string]int, len(containers))
	current := make(map[string]string, len(containers))
	for i, c := range containers {
		names = append(names, c.Name)
		index[c.Name] = i
		current[c.Name] = c.Image
	}
	rw := &rewrite{index: make(map[string]int, len(p.Containers)), images: p.Containers, restoredFrom: p.Checkpoint, keepPods: p.KeepPods}
	for _, c := range sortedKeys(p.Containers) {
		i, ok := index[c]
		if !ok {
			return nil, fmt.Errorf("restore %s: plan %s names container %q, the workload has %s", w, p.Checkpoint, c, strings.Join(names, ", "))
		}
		rw.index[c] = i
	}
	var err error
	if rw.originals, err = originalImages(w, rw.index, current); err != nil {
		return nil, err
	}
	// encoding/json sorts map keys: stable annotation values.
	if rw.originalImages, err = jsonString(rw.originals); err != nil {
		return nil, err
	}
	if rw.restoreImages, err = jsonString(rw.images); err != nil {
		return nil, err
	}
	return rw, rw.setOptional(w, p)
}

func jsonString(m map[string]string) (string, error) {
	raw, err := json.Marshal(m)
	return string(raw), err
}

// originalImages is AnnotationOriginalImages after a rewrite of the
// planned containers (index) of a workload running current. The originals
// survive repeated rewrites: an image already recorded is the one the user
// wrote, whatever the workload runs now.
func originalImages(w *workload, index map[string]int, current map[string]string) (map[string]string, error) {
	originals, err := OriginalImages(w.object.GetAnnotations())
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", w, err)
	}
	if originals == nil {
		originals = map[string]string{}
	}
	for c := range index {
		if _, recorded := originals[c]; !recorded {
			originals[c] = current[c]
		}
	}
	return originals, nil
}

// setOptional records what a plan may or may not carry: the per-pod and
// source images, the template generation and the pull Secret.
func (rw *rewrite) setOptional(w *workload, p Plan) error {
	if len(p.Pods) > 0 {
		raw, err := json.Marshal(p.Pods)
		if err != nil {
			return err
		}
		rw.podImages = string(raw)
	}
	if len(p.SourceImages) > 0 {
		raw, err := json.Marshal(p.SourceImages)
		if err != nil {
			return err
		}
		rw.sourceImages = string(raw)
	}
	if p.TemplateGeneration > 0 {
		rw.generation = strconv.FormatInt(p.TemplateGeneration, 10)
	}
	rw.pullSecret = planPullSecret(w.template(), p)
	return nil
}

// Rewrite returns a copy of obj that restores the plan's containers from
// their checkpoint images: the checkpoint images, the checkpoint's name and
// the original images recorded in annotations on the pod template (and the
// last two on the workload), the plan's pull Secret added to
// imagePullSecrets. The containers keep their own images: the member's
// pod-restore webhook gives each pod of a pending restore its checkpoint
// images, so that once the restore completed a new pod starts from the
// template as it is, with or without the webhook (a template that named the
// checkpoint images would restore the old process again). Nothing else
// changes, and Rewrite(Rewrite(x)) equals Rewrite(x).
func Rewrite(obj *unstructured.Unstructured, p Plan) (*unstructured.Unstructured, error) {
	w, err := decodeWorkload(obj)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rw, err := plan(w, p)
	if err != nil {
		return nil, err
	}
	rw.apply(w)
	return w.encode()
}

// apply makes the rewrite's edits on w's typed object.
func (rw *rewrite) apply(w *workload) {
	template := w.template()
	for c, i := range rw.index {
		template.Spec.Containers[i].Image = rw.originals[c]
	}
	w.object.SetAnnotations(withAnnotations(w.object.GetAnnotations(), map[string]string{
		AnnotationRestoredFrom:   rw.restoredFrom,
		AnnotationOriginalImages: rw.originalImages,
	}))
	template.Annotations = withAnnotations(template.Annotations, rw.templateAnnotations())
	rw.pullSecret.apply(&template.Spec)
	if s := w.statefulSet(); s != nil {
		keepPods(s, rw.keepPods)
	}
}

// templateAnnotations are the pod-template annotations of the rewrite,
// the optional ones empty when the plan does not carry them.
func (rw *rewrite) templateAnnotations() map[string]string {
	set := rw.optional()
	set[AnnotationRestoredFrom] = rw.restoredFrom
	set[AnnotationOriginalImages] = rw.originalImages
	set[AnnotationRestoreImages] = rw.restoreImages
	return set
}

// withAnnotations is annotations (a copy) with set's keys set, and removed
// where set's value is empty.
func withAnnotations(annotations, set map[string]string) map[string]string {
	out := make(map[string]string, len(annotations)+len(set))
	for k, v := range annotations {
		out[k] = v
	}
	for k, v := range set {
		if v != "" {
			out[k] = v
		} else {
			delete(out, k)
		}
	}
	return out
}

// RestoreImages reads AnnotationRestoreImages (container -> checkpoint
// image); nil when absent.
func RestoreImages(annotations map[string]string) (map[string]string, error) {
	return imagesAnnotation(annotations, AnnotationRestoreImages)
}

// OriginalImages reads AnnotationOriginalImages; nil when absent.
func OriginalImages(annotations map[string]string) (map[string]string, error) {
	return imagesAnnotation(annotations, AnnotationOriginalImages)
}

// imagesAnnotation reads a JSON object container -> image from key; nil
// when absent.
func imagesAnnotation(annotations map[string]string, key string) (map[string]string, error) {
	raw, ok := annotations[key]
	if !ok {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON object of strings: %w", key, err)
	}
	return m, nil
}
