package restore

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PullPolicy is set on restored containers: the checkpoint image is pinned
// by digest, so pulling it again on every start would only add latency.
const PullPolicy = "IfNotPresent"

// podTemplatePaths says where each supported kind keeps its pod template.
// Adding a kind is one line.
var podTemplatePaths = map[schema.GroupVersionKind][]string{
	{Group: "apps", Version: "v1", Kind: "Deployment"}:  {"spec", "template"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"}: {"spec", "template"},
}

// Supported says whether Rewrite knows the kind.
func Supported(gvk schema.GroupVersionKind) bool {
	_, ok := podTemplatePaths[gvk]
	return ok
}

// rewrite is what a plan changes in one workload, computed once and then
// either applied (Rewrite) or expressed as JSON-patch operations (Patches).
type rewrite struct {
	templatePath []string
	// index of each planned container in the template's containers.
	index map[string]int
	// annotation values written on the workload and on the template.
	restoredFrom   string
	originalImages string
	podImages      string // empty: remove any
	sourceImages   string // empty: remove any
	generation     string // empty: remove any
	// strategy is the StatefulSet updateStrategy that keeps the pods that
	// stay (Plan.KeepPods); nil: unchanged.
	strategy map[string]interface{}
	// pullSecret is the change to the template's imagePullSecrets.
	pullSecret pullSecretChange
}

// optional are the pod-template annotations a plan may or may not carry:
// set when the plan has them, removed when a previous rewrite left them.
func (rw *rewrite) optional() map[string]string {
	return map[string]string{AnnotationPodImages: rw.podImages, AnnotationSourceImages: rw.sourceImages, AnnotationTemplateGeneration: rw.generation,
		AnnotationPullSecret: rw.pullSecret.record}
}

func plan(obj *unstructured.Unstructured, p Plan) (*rewrite, error) {
	if obj == nil {
		return nil, fmt.Errorf("restore: no workload")
	}
	gvk := obj.GroupVersionKind()
	path, ok := podTemplatePaths[gvk]
	if !ok {
		return nil, fmt.Errorf("restore %s %s/%s: kind %s is not supported (only apps/v1 Deployment and StatefulSet)",
			gvk.Kind, obj.GetNamespace(), obj.GetName(), gvk)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	containers, _, err := unstructured.NestedSlice(obj.Object, append(path, "spec", "containers")...)
	if err != nil {
		return nil, fmt.Errorf("restore %s %s/%s: containers: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	names := make([]string, 0, len(containers))
	index := make(map[string]int, len(containers))
	current := make(map[string]string, len(containers))
	for i, c := range containers {
		m, ok := c.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("restore %s %s/%s: container %d is not an object", gvk.Kind, obj.GetNamespace(), obj.GetName(), i)
		}
		name, _ := m["name"].(string)
		image, _ := m["image"].(string)
		names = append(names, name)
		index[name] = i
		current[name] = image
	}
	rw := &rewrite{templatePath: path, index: make(map[string]int, len(p.Containers)), restoredFrom: p.Checkpoint}
	for _, c := range sortedKeys(p.Containers) {
		i, ok := index[c]
		if !ok {
			return nil, fmt.Errorf("restore %s %s/%s: plan %s names container %q, the workload has %s",
				gvk.Kind, obj.GetNamespace(), obj.GetName(), p.Checkpoint, c, strings.Join(names, ", "))
		}
		rw.index[c] = i
	}

	if rw.originalImages, err = originalImagesJSON(obj, rw.index, current); err != nil {
		return nil, err
	}
	return rw, rw.setOptional(obj, p)
}

// originalImagesJSON is AnnotationOriginalImages after a rewrite of the
// planned containers (index) of a workload running current. The originals
// survive repeated rewrites: an image already recorded is the one the user
// wrote, whatever the workload runs now.
func originalImagesJSON(obj *unstructured.Unstructured, index map[string]int, current map[string]string) (string, error) {
	originals, err := OriginalImages(obj.GetAnnotations())
	if err != nil {
		return "", fmt.Errorf("restore %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	if originals == nil {
		originals = map[string]string{}
	}
	for c := range index {
		if _, recorded := originals[c]; !recorded {
			originals[c] = current[c]
		}
	}
	raw, err := json.Marshal(originals) // map keys are sorted: stable output
	return string(raw), err
}

// setOptional records what a plan may or may not carry: the per-pod and
// source images, the template generation, the pull Secret and the kept
// pods' strategy.
func (rw *rewrite) setOptional(obj *unstructured.Unstructured, p Plan) error {
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
	var err error
	if rw.pullSecret, err = planPullSecret(obj, rw.templatePath, p); err != nil {
		return err
	}
	rw.strategy, err = keptStrategy(obj, p.KeepPods)
	return err
}

// Rewrite returns a copy of obj that restores the plan's containers from
// their checkpoint images: image replaced by the digest, pull policy
// IfNotPresent, the plan's pull Secret added to imagePullSecrets, and the
// checkpoint name and the original images recorded
// in annotations on the workload and on its pod template. Nothing else
// changes, and Rewrite(Rewrite(x)) equals Rewrite(x).
func Rewrite(obj *unstructured.Unstructured, p Plan) (*unstructured.Unstructured, error) {
	rw, err := plan(obj, p)
	if err != nil {
		return nil, err
	}
	out := obj.DeepCopy()
	containersPath := append(append([]string{}, rw.templatePath...), "spec", "containers")
	containers, _, _ := unstructured.NestedFieldNoCopy(out.Object, containersPath...)
	list := containers.([]interface{})
	for c, i := range rw.index {
		m := list[i].(map[string]interface{})
		m["image"] = p.Containers[c]
		m["imagePullPolicy"] = PullPolicy
	}

	annotations := out.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationRestoredFrom] = rw.restoredFrom
	annotations[AnnotationOriginalImages] = rw.originalImages
	out.SetAnnotations(annotations)

	templateAnnotationsPath := append(append([]string{}, rw.templatePath...), "metadata", "annotations")
	tmpl, _, err := unstructured.NestedStringMap(out.Object, templateAnnotationsPath...)
	if err != nil {
		return nil, fmt.Errorf("restore %s/%s: pod template annotations: %w", out.GetNamespace(), out.GetName(), err)
	}
	if tmpl == nil {
		tmpl = map[string]string{}
	}
	tmpl[AnnotationRestoredFrom] = rw.restoredFrom
	tmpl[AnnotationOriginalImages] = rw.originalImages
	for k, v := range rw.optional() {
		if v != "" {
			tmpl[k] = v
		} else {
			delete(tmpl, k)
		}
	}
	if err := unstructured.SetNestedStringMap(out.Object, tmpl, templateAnnotationsPath...); err != nil {
		return nil, err
	}
	template, _, _ := unstructured.NestedFieldNoCopy(out.Object, rw.templatePath...)
	if err := rw.pullSecret.apply(template.(map[string]interface{})); err != nil {
		return nil, err
	}
	if rw.strategy != nil {
		if err := unstructured.SetNestedMap(out.Object, rw.strategy, "spec", "updateStrategy"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OriginalImages reads AnnotationOriginalImages; nil when absent.
func OriginalImages(annotations map[string]string) (map[string]string, error) {
	raw, ok := annotations[AnnotationOriginalImages]
	if !ok {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON object of strings: %w", AnnotationOriginalImages, err)
	}
	return m, nil
}

// sortedIndex lists the planned containers by position, for stable patches.
func (rw *rewrite) sortedIndex() []string {
	names := make([]string, 0, len(rw.index))
	for c := range rw.index {
		names = append(names, c)
	}
	sort.Slice(names, func(i, j int) bool { return rw.index[names[i]] < rw.index[names[j]] })
	return names
}
