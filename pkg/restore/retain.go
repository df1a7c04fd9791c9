package restore

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Retain adjusts desired (the manifest Karmada is about to write on a
// member) with what must survive from observed (the member's object):
//
//   - the agent's stateshift.io/ annotations (memberKeys) the member has
//     and desired lacks: the agent writes them on the member, Karmada's
//     template never has them. Any other stateshift.io/ key the member
//     shows and the template does not manage is dropped (dropMemberKeys):
//     a member user must not pin state stateshift reads (issue 12);
//   - a restored workload's checkpoint images, pull policy, the plan's pull
//     Secret in imagePullSecrets and pod-template annotations, when desired is exactly the pre-restore workload (the
//     restore plan was withdrawn and the user changed nothing): otherwise
//     withdrawing the plan would roll the restored pods back to a cold start;
//   - then also AnnotationRestoreCompleted on the workload: the plan is
//     withdrawn from a cluster only once its copy runs restored, so from
//     here on a new pod of this workload must not restore the same
//     checkpoint again (the member's pod-restore webhook reads it).
//
// If the user changed the pod template (an image other than the recorded
// original, or any other field), desired wins: those pods must start from
// the new template, not from an old checkpoint.
func Retain(desired, observed *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out := desired.DeepCopy()
	keep, err := KeepRestored(desired, observed)
	if err != nil {
		return nil, err
	}
	if annotations := retainedAnnotations(out, desired, observed, keep); len(annotations) > 0 {
		out.SetAnnotations(annotations)
	}
	if !keep {
		return out, nil
	}
	if err := KeepPartition(out, observed); err != nil {
		return nil, err
	}
	if err := keepRestoredTemplate(out, observed); err != nil {
		return nil, err
	}
	return out, nil
}

// retainedAnnotations are the workload annotations of out (desired, as
// Karmada rendered it) once the member's are decided on: the agent's kept,
// the restore's kept or dropped with the restore, member-only keys dropped.
func retainedAnnotations(out, desired, observed *unstructured.Unstructured, keep bool) map[string]string {
	annotations := out.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	for k, v := range observed.GetAnnotations() {
		if !IsStateshiftAnnotation(k) || (isRestoreKey(k) && !keep) || (!isRestoreKey(k) && !memberKeys[k]) {
			continue
		}
		if _, ok := annotations[k]; !ok || isRestoreKey(k) {
			annotations[k] = v
		}
	}
	if keep {
		annotations[AnnotationRestoreCompleted] = observed.GetAnnotations()[AnnotationRestoredFrom]
	}
	if planned(out) {
		// A new restore is armed for this cluster: whatever completed here
		// before must not stop its pods (even the same checkpoint again).
		delete(annotations, AnnotationRestoreCompleted)
	}
	if !keep && !planned(out) {
		// The restore is over (plan withdrawn and the user's template wins):
		// the workload must not keep claiming it, even if Karmada's own
		// annotation retention copied the keys from the member.
		for _, k := range restoreKeys {
			delete(annotations, k)
		}
	}
	dropMemberKeys(annotations, desired)
	return annotations
}

// keepRestoredTemplate gives out's pod template what the restore changed
// in observed's: the restored containers' images and pull policy, the
// plan's pull Secret and the restore's pod-template annotations. Call it
// only when the restore is kept (KeepRestored): out is then the
// pre-restore workload, and without these the plan's withdrawal would
// roll the restored pods back to a cold start.
func keepRestoredTemplate(out, observed *unstructured.Unstructured) error {
	path := podTemplatePaths[observed.GroupVersionKind()]
	observedTemplate, _, err := unstructured.NestedMap(observed.Object, path...)
	if err != nil {
		return fmt.Errorf("retain %s/%s: observed pod template: %w", observed.GetNamespace(), observed.GetName(), err)
	}
	desiredTemplate, _, err := unstructured.NestedMap(out.Object, path...)
	if err != nil {
		return fmt.Errorf("retain %s/%s: desired pod template: %w", out.GetNamespace(), out.GetName(), err)
	}
	originals, _ := OriginalImages(observed.GetAnnotations())
	if err := keepRestoredContainers(desiredTemplate, observedTemplate, originals); err != nil {
		return err
	}
	if err := keepPullSecret(desiredTemplate, observedTemplate); err != nil {
		return err
	}
	if err := keepRestoreAnnotations(desiredTemplate, observedTemplate); err != nil {
		return err
	}
	return unstructured.SetNestedMap(out.Object, desiredTemplate, path...)
}

// keepRestoredContainers carries the observed image and pull policy of
// every restored container (those with a recorded original) to desired.
func keepRestoredContainers(desiredTemplate, observedTemplate map[string]interface{}, originals map[string]string) error {
	observedContainers, _, _ := unstructured.NestedSlice(observedTemplate, "spec", "containers")
	desiredContainers, _, _ := unstructured.NestedSlice(desiredTemplate, "spec", "containers")
	for i, dc := range desiredContainers {
		d, ok := dc.(map[string]interface{})
		if !ok {
			continue
		}
		name, _ := d["name"].(string)
		o := containerByName(observedContainers, name)
		if _, restored := originals[name]; !restored || o == nil {
			continue
		}
		d["image"] = o["image"]
		if policy, ok := o["imagePullPolicy"]; ok {
			d["imagePullPolicy"] = policy
		}
		desiredContainers[i] = d
	}
	return unstructured.SetNestedSlice(desiredTemplate, desiredContainers, "spec", "containers")
}

// keepRestoreAnnotations carries the observed pod-template annotations of
// the restore (Rewrite's keys only: nothing a member user added).
func keepRestoreAnnotations(desiredTemplate, observedTemplate map[string]interface{}) error {
	observedAnnotations, _, _ := unstructured.NestedStringMap(observedTemplate, "metadata", "annotations")
	desiredAnnotations, _, _ := unstructured.NestedStringMap(desiredTemplate, "metadata", "annotations")
	if desiredAnnotations == nil {
		desiredAnnotations = map[string]string{}
	}
	for k, v := range observedAnnotations {
		if isRestoreKey(k) {
			desiredAnnotations[k] = v
		}
	}
	return unstructured.SetNestedStringMap(desiredTemplate, desiredAnnotations, "metadata", "annotations")
}

// KeepRestored says whether observed is a restored workload and desired is
// the workload it was restored from, unchanged: every restored container's
// desired image equals the recorded original, desired carries no restore
// of its own, and every other field desired sets in the pod template has
// the value the member shows (the member may add defaults, never remove).
func KeepRestored(desired, observed *unstructured.Unstructured) (bool, error) {
	path, ok := podTemplatePaths[observed.GroupVersionKind()]
	if !ok || desired.GroupVersionKind() != observed.GroupVersionKind() {
		return false, nil
	}
	if _, restored := observed.GetAnnotations()[AnnotationRestoredFrom]; !restored {
		return false, nil
	}
	desiredTemplate, _, err := unstructured.NestedMap(desired.Object, path...)
	if err != nil {
		return false, fmt.Errorf("retain %s/%s: desired pod template: %w", desired.GetNamespace(), desired.GetName(), err)
	}
	observedTemplate, _, err := unstructured.NestedMap(observed.Object, path...)
	if err != nil {
		return false, fmt.Errorf("retain %s/%s: observed pod template: %w", observed.GetNamespace(), observed.GetName(), err)
	}
	if planned(desired) {
		return false, nil // a plan is armed: its rewrite is the desired state
	}
	if !restoreCameUp(observed) {
		// A restore the runtime refused (CreateContainerError on a node
		// that cannot restore) is not kept: withdrawing its plan must bring
		// the workload back to its own images, cold.
		return false, nil
	}
	originals, err := OriginalImages(observed.GetAnnotations())
	if err != nil || len(originals) == 0 {
		// Without the record we cannot tell a withdrawn plan from a user's
		// change: let desired win.
		return false, nil
	}
	if !validRestore(observed, observedTemplate, originals) {
		return false, nil // not stateshift's own restore: desired wins
	}
	desiredContainers, _, _ := unstructured.NestedSlice(desiredTemplate, "spec", "containers")
	observedContainers, _, _ := unstructured.NestedSlice(observedTemplate, "spec", "containers")
	for name, original := range originals {
		d := containerByName(desiredContainers, name)
		if d == nil || containerByName(observedContainers, name) == nil {
			return false, nil
		}
		if d["image"] != original {
			return false, nil // the user changed the image: their change wins
		}
	}
	// Compare the rest of the template with the restore's own fields out.
	return subset(stripRestore(desiredTemplate, originals), stripRestore(observedTemplate, originals)), nil
}

// restoreCameUp says whether the member's restored workload ever ran: its
// restore was recorded complete by an earlier Retain (from then on a pod
// lost later does not undo it), or every replica is ready now. The controller withdraws a plan from a
// cluster only once its copy runs restored, or once its pods failed to
// restore: only the first finds it ready.
func restoreCameUp(observed *unstructured.Unstructured) bool {
	ann := observed.GetAnnotations()
	if done := ann[AnnotationRestoreCompleted]; done != "" && done == ann[AnnotationRestoredFrom] {
		return true
	}
	replicas, found, err := unstructured.NestedInt64(observed.Object, "spec", "replicas")
	if err != nil {
		return false
	}
	if !found {
		replicas = 1 // the API server's default
	}
	// The destination ran nothing of the workload before the restore, so
	// whatever is ready is restored.
	ready, _, _ := unstructured.NestedInt64(observed.Object, "status", "readyReplicas")
	return ready >= replicas
}

// restoreKeys are the annotations of a restore (Rewrite's and Retain's;
// the agent's are not).
var restoreKeys = []string{AnnotationRestoredFrom, AnnotationOriginalImages, AnnotationPodImages, AnnotationSourceImages, AnnotationTemplateGeneration,
	AnnotationPullSecret, AnnotationRestoreCompleted}

func isRestoreKey(k string) bool {
	for _, r := range restoreKeys {
		if k == r {
			return true
		}
	}
	return false
}

// planned says whether a manifest carries an armed restore. The pod
// template is the witness: Karmada's objectwatcher copies a member's
// top-level annotations into the desired object before calling Retain
// (util.RetainAnnotations), but never the template's.
func planned(obj *unstructured.Unstructured) bool {
	path, ok := podTemplatePaths[obj.GroupVersionKind()]
	if !ok {
		return false
	}
	ann, _, _ := unstructured.NestedStringMap(obj.Object, append(append([]string{}, path...), "metadata", "annotations")...)
	_, ok = ann[AnnotationRestoredFrom]
	return ok
}

func containerByName(containers []interface{}, name string) map[string]interface{} {
	for _, c := range containers {
		if m, ok := c.(map[string]interface{}); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

// stripRestore removes what Rewrite sets from a (copied) pod template.
func stripRestore(template map[string]interface{}, restored map[string]string) map[string]interface{} {
	t := unstructured.Unstructured{Object: template}
	out := t.DeepCopy().Object
	stripPullSecret(out) // before the annotation that names it goes
	if ann, ok, _ := unstructured.NestedMap(out, "metadata", "annotations"); ok {
		for k := range ann {
			if IsStateshiftAnnotation(k) {
				unstructured.RemoveNestedField(out, "metadata", "annotations", k)
			}
		}
	}
	containers, _, _ := unstructured.NestedSlice(out, "spec", "containers")
	for i, c := range containers {
		m, ok := c.(map[string]interface{})
		if !ok {
			continue
		}
		if name, _ := m["name"].(string); restored[name] != "" {
			delete(m, "image")
			delete(m, "imagePullPolicy")
		}
		containers[i] = m
	}
	if containers != nil {
		_ = unstructured.SetNestedSlice(out, containers, "spec", "containers")
	}
	return out
}

// subset says whether every value set in a is set to the same value in b;
// lists must have the same length and match element by element.
func subset(a, b interface{}) bool {
	switch av := a.(type) {
	case map[string]interface{}:
		bv, ok := b.(map[string]interface{})
		if !ok {
			return len(av) == 0 && b == nil
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok {
				if x == nil || isEmpty(x) {
					continue
				}
				return false
			}
			if !subset(x, y) {
				return false
			}
		}
		return true
	case []interface{}:
		bv, ok := b.([]interface{})
		if !ok {
			return len(av) == 0 && b == nil
		}
		if len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !subset(av[i], bv[i]) {
				return false
			}
		}
		return true
	default:
		if reflect.DeepEqual(a, b) {
			return true
		}
		af, aNum := number(a)
		bf, bNum := number(b)
		return aNum && bNum && af == bf
	}
}

func isEmpty(v interface{}) bool {
	switch x := v.(type) {
	case map[string]interface{}:
		return len(x) == 0
	case []interface{}:
		return len(x) == 0
	}
	return false
}

func number(v interface{}) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case int32:
		return float64(x), true
	}
	return 0, false
}

// memberKeys are the stateshift.io/ annotations stateshift's agent writes
// on a member workload (read back by InterpretStatus, validated there).
var memberKeys = map[string]bool{AnnotationLatestCheckpoint: true, AnnotationLatestCheckpointImages: true, AnnotationLatestCheckpointTime: true}

// annotationManagedByKarmada is the annotation Karmada writes on every
// manifest it renders, listing the template's annotation keys
// (workv1alpha2.ManagedAnnotation).
const annotationManagedByKarmada = "resourcetemplate.karmada.io/managed-annotations"

// dropMemberKeys removes from annotations the stateshift.io/ keys that
// only the member has: Karmada copies every annotation of the member into
// desired before Retain (util.RetainAnnotations), so a key a member user
// adds (e.g. a forged restore record) would otherwise stay for good. Kept:
// the keys the template manages (Karmada's list on desired), the agent's
// (memberKeys) and the restore's, which Retain itself decided on above.
// Without Karmada's list nothing is dropped: the template's keys cannot be
// told apart.
func dropMemberKeys(annotations map[string]string, desired *unstructured.Unstructured) {
	list, ok := desired.GetAnnotations()[annotationManagedByKarmada]
	if !ok {
		return
	}
	managed := map[string]bool{}
	for _, k := range strings.Split(list, ",") {
		managed[k] = true
	}
	for k := range annotations {
		if IsStateshiftAnnotation(k) && !managed[k] && !memberKeys[k] && !isRestoreKey(k) {
			delete(annotations, k)
		}
	}
}

// validRestore says whether observed carries stateshift's own restore, as
// Rewrite writes it, before Retain keeps it: the checkpoint's name is a
// valid one, the pod template names the same checkpoint, and every
// restored container runs an image by digest (a checkpoint image; a
// member user's swap to a tag, with a forged record, is not kept).
//
// restored-from stays on a kept template for as long as the workload runs
// from its checkpoint images: removing it would change the template (a
// rolling restart) and let a new pod start the checkpoint image without
// the pod-restore webhook, restoring the same process again. It goes when
// desired wins (the plan withdrawn and the template changed), below.
func validRestore(observed *unstructured.Unstructured, template map[string]interface{}, originals map[string]string) bool {
	from := observed.GetAnnotations()[AnnotationRestoredFrom]
	if (Plan{Checkpoint: from, Containers: map[string]string{"": ckptPlaceholder}}).Validate() != nil {
		return false
	}
	templateAnnotations, _, _ := unstructured.NestedStringMap(template, "metadata", "annotations")
	if templateAnnotations[AnnotationRestoredFrom] != from {
		return false
	}
	containers, _, _ := unstructured.NestedSlice(template, "spec", "containers")
	for name := range originals {
		image, _ := containerByName(containers, name)["image"].(string)
		if CheckDigestImage(image) != nil {
			return false
		}
	}
	return true
}

// ckptPlaceholder lets Plan.Validate check a checkpoint name alone.
const ckptPlaceholder = "example.invalid/checkpoint@sha256:0000000000000000000000000000000000000000000000000000000000000000"
