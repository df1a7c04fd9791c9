package restore

import (
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
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
// the new template, not from an old checkpoint. desired and observed must
// be of one supported kind; a malformed one is an error naming the field.
func Retain(desired, observed *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	d, o, err := decodePair(desired, observed)
	if err != nil {
		return nil, err
	}
	keep, err := keepRestored(d, o)
	if err != nil {
		return nil, err
	}
	d.object.SetAnnotations(retainedAnnotations(d, o, keep))
	if keep {
		keepPartition(d, o)
		if err := keepRestoredTemplate(d.template(), o); err != nil {
			return nil, err
		}
	}
	return d.encode()
}

// decodePair decodes Retain's desired and observed, of one kind.
func decodePair(desired, observed *unstructured.Unstructured) (*workload, *workload, error) {
	d, err := decodeWorkload(desired)
	if err != nil {
		return nil, nil, fmt.Errorf("retain: desired %w", err)
	}
	o, err := decodeWorkload(observed)
	if err != nil {
		return nil, nil, fmt.Errorf("retain: observed %w", err)
	}
	if d.gvk != o.gvk {
		return nil, nil, fmt.Errorf("retain %s: the observed object is a %s (%s)", d, o.gvk.Kind, o.gvk.GroupVersion())
	}
	return d, o, nil
}

// retainedAnnotations are the workload annotations of desired (as Karmada
// rendered it) once the member's are decided on: the agent's kept, the
// restore's kept or dropped with the restore, member-only keys dropped.
func retainedAnnotations(desired, observed *workload, keep bool) map[string]string {
	annotations := withAnnotations(desired.object.GetAnnotations(), nil) // a copy
	observedAnnotations := observed.object.GetAnnotations()
	for k, v := range observedAnnotations {
		if !IsStateshiftAnnotation(k) || (isRestoreKey(k) && !keep) || (!isRestoreKey(k) && !memberKeys[k]) {
			continue
		}
		if _, ok := annotations[k]; !ok || isRestoreKey(k) {
			annotations[k] = v
		}
	}
	if keep {
		annotations[AnnotationRestoreCompleted] = observedAnnotations[AnnotationRestoredFrom]
	}
	if planned(desired) {
		// A new restore is armed for this cluster: whatever completed here
		// before must not stop its pods (even the same checkpoint again).
		delete(annotations, AnnotationRestoreCompleted)
	}
	if !keep && !planned(desired) {
		// The restore is over (plan withdrawn and the user's template wins):
		// the workload must not keep claiming it, even if Karmada's own
		// annotation retention copied the keys from the member.
		for _, k := range restoreKeys {
			delete(annotations, k)
		}
	}
	dropMemberKeys(annotations, desired.object.GetAnnotations())
	return annotations
}

// keepRestoredTemplate gives desired, a pod template, what the restore
// changed in observed's: the restored containers' images and pull policy,
// the plan's pull Secret and the restore's pod-template annotations. Call
// it only when the restore is kept (keepRestored): desired is then the
// pre-restore template, and without these the plan's withdrawal would
// roll the restored pods back to a cold start.
func keepRestoredTemplate(desired *corev1.PodTemplateSpec, observed *workload) error {
	originals, err := OriginalImages(observed.object.GetAnnotations())
	if err != nil {
		return fmt.Errorf("retain %s: %w", observed, err)
	}
	observedTemplate := observed.template()
	// A template rewritten before restore-images existed runs the
	// checkpoint images in its containers; one rewritten since keeps the
	// originals, which desired has too (keepRestored checked), and this
	// copies nothing.
	for i := range desired.Spec.Containers {
		d := &desired.Spec.Containers[i]
		o := containerByName(observedTemplate.Spec.Containers, d.Name)
		if _, restored := originals[d.Name]; !restored || o == nil || o.Image == d.Image {
			continue
		}
		d.Image = o.Image
		if o.ImagePullPolicy != "" {
			d.ImagePullPolicy = o.ImagePullPolicy
		}
	}
	keepPullSecret(desired, observedTemplate)
	// Rewrite's keys only: nothing a member user added.
	restoreAnnotations := map[string]string{}
	for k, v := range observedTemplate.Annotations {
		if isRestoreKey(k) {
			restoreAnnotations[k] = v
		}
	}
	desired.Annotations = withAnnotations(desired.Annotations, restoreAnnotations)
	return nil
}

// KeepRestored says whether observed is a restored workload and desired is
// the workload it was restored from, unchanged: every restored container's
// desired image equals the recorded original, desired carries no restore
// of its own, and every other field desired sets in the pod template has
// the value the member shows (the member may add defaults, never remove).
// Objects of another or an unsupported kind are not.
func KeepRestored(desired, observed *unstructured.Unstructured) (bool, error) {
	if desired == nil || observed == nil || !Supported(observed.GroupVersionKind()) || desired.GroupVersionKind() != observed.GroupVersionKind() {
		return false, nil
	}
	d, o, err := decodePair(desired, observed)
	if err != nil {
		return false, err
	}
	return keepRestored(d, o)
}

func keepRestored(desired, observed *workload) (bool, error) {
	if _, restored := observed.object.GetAnnotations()[AnnotationRestoredFrom]; !restored {
		return false, nil
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
	originals, err := OriginalImages(observed.object.GetAnnotations())
	if err != nil || len(originals) == 0 {
		// Without the record we cannot tell a withdrawn plan from a user's
		// change: let desired win.
		return false, nil
	}
	if !validRestore(observed, originals) {
		return false, nil // not stateshift's own restore: desired wins
	}
	for name, original := range originals {
		d := containerByName(desired.template().Spec.Containers, name)
		if d == nil || containerByName(observed.template().Spec.Containers, name) == nil {
			return false, nil
		}
		if d.Image != original {
			return false, nil // the user changed the image: their change wins
		}
	}
	return sameTemplate(desired, observed, originals)
}

// sameTemplate says whether every field desired sets in its pod template
// has the value observed's shows, the restore's own fields left out. Both
// are compared as the converter encodes them, so that one value written
// two ways (a quantity "0.5" and "500m") is one value.
func sameTemplate(desired, observed *workload, restored map[string]string) (bool, error) {
	d, err := runtime.DefaultUnstructuredConverter.ToUnstructured(stripRestore(desired.template(), restored))
	if err != nil {
		return false, fmt.Errorf("retain %s: desired pod template: %w", desired, err)
	}
	o, err := runtime.DefaultUnstructuredConverter.ToUnstructured(stripRestore(observed.template(), restored))
	if err != nil {
		return false, fmt.Errorf("retain %s: observed pod template: %w", observed, err)
	}
	return subset(d, o), nil
}

// restoreCameUp says whether the member's restored workload ever ran: its
// restore was recorded complete by an earlier Retain (from then on a pod
// lost later does not undo it), or every replica is ready now. The controller withdraws a plan from a
// cluster only once its copy runs restored, or once its pods failed to
// restore: only the first finds it ready.
func restoreCameUp(observed *workload) bool {
	ann := observed.object.GetAnnotations()
	if done := ann[AnnotationRestoreCompleted]; done != "" && done == ann[AnnotationRestoredFrom] {
		return true
	}
	// The destination ran nothing of the workload before the restore, so
	// whatever is ready is restored.
	replicas, ready := observed.kind.replicas(observed.object)
	return ready >= replicas
}

// restoreKeys are the annotations of a restore (Rewrite's and Retain's;
// the agent's are not).
var restoreKeys = []string{AnnotationRestoredFrom, AnnotationOriginalImages, AnnotationRestoreImages, AnnotationPodImages, AnnotationSourceImages, AnnotationTemplateGeneration,
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
func planned(w *workload) bool {
	_, ok := w.template().Annotations[AnnotationRestoredFrom]
	return ok
}

func containerByName(containers []corev1.Container, name string) *corev1.Container {
	for i := range containers {
		if containers[i].Name == name {
			return &containers[i]
		}
	}
	return nil
}

// stripRestore is a copy of a pod template without what Rewrite sets.
func stripRestore(template *corev1.PodTemplateSpec, restored map[string]string) *corev1.PodTemplateSpec {
	out := template.DeepCopy()
	stripPullSecret(out) // before the annotation that names it goes
	for k := range out.Annotations {
		if IsStateshiftAnnotation(k) {
			delete(out.Annotations, k)
		}
	}
	for i := range out.Spec.Containers {
		if restored[out.Spec.Containers[i].Name] != "" {
			out.Spec.Containers[i].Image = ""
			out.Spec.Containers[i].ImagePullPolicy = ""
		}
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
func dropMemberKeys(annotations, desired map[string]string) {
	list, ok := desired[annotationManagedByKarmada]
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
// restored container restores an image by digest (a checkpoint image; a
// member user's swap to a tag, with a forged record, is not kept). A
// template rewritten before restore-images existed named the checkpoint
// images in its containers.
//
// restored-from stays on a kept template for as long as the workload runs
// restored: removing it would change the template (a rolling restart). It
// goes when desired wins (the plan withdrawn and the template changed),
// below.
func validRestore(observed *workload, originals map[string]string) bool {
	from := observed.object.GetAnnotations()[AnnotationRestoredFrom]
	if (Plan{Checkpoint: from, Containers: map[string]string{"": ckptPlaceholder}}).Validate() != nil {
		return false
	}
	template := observed.template()
	if template.Annotations[AnnotationRestoredFrom] != from {
		return false
	}
	restoring, err := RestoreImages(template.Annotations)
	if err != nil {
		return false
	}
	for name := range originals {
		c := containerByName(template.Spec.Containers, name)
		if c == nil {
			return false
		}
		image := c.Image // a template rewritten before restore-images
		if restoring != nil {
			image = restoring[name]
		}
		if CheckDigestImage(image) != nil {
			return false
		}
	}
	return true
}

// ckptPlaceholder lets Plan.Validate check a checkpoint name alone.
const ckptPlaceholder = "example.invalid/checkpoint@sha256:0000000000000000000000000000000000000000000000000000000000000000"
