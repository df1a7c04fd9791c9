package restore

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// A destination pulls the checkpoint images with the pod's
// imagePullSecrets. The plan adds the policy's pull-only Secret
// (Plan.PullSecret) to the restored pod template, beside the workload's
// own entries, and records the name it added in the pod-template
// annotation AnnotationPullSecret: Retain then tells the plan's entry from
// the workload's own, keeps it while the restore is kept, and compares the
// rest of the list with the template.

// pullSecretChange is what a plan does to a pod template's imagePullSecrets.
type pullSecretChange struct {
	// record is the plan's Secret when the plan owns its entry (it adds it,
	// or an earlier rewrite did): the value of AnnotationPullSecret; empty
	// when the plan has none or the workload lists the Secret itself.
	record string
	// add says the entry is missing from the list.
	add bool
	// listed says imagePullSecrets is a list already (else it is created);
	// entries is its length.
	listed  bool
	entries int
	// stale is the index of an entry an earlier rewrite added for another
	// Secret (to remove), -1 when there is none.
	stale int
}

// planPullSecret computes the change of plan p to template.
func planPullSecret(template *corev1.PodTemplateSpec, p Plan) pullSecretChange {
	secrets := template.Spec.ImagePullSecrets
	ch := pullSecretChange{stale: -1, listed: secrets != nil, entries: len(secrets)}
	recorded := template.Annotations[AnnotationPullSecret]
	if recorded != "" && recorded != p.PullSecret {
		ch.stale = lastIndex(secrets, recorded)
	}
	if p.PullSecret == "" {
		return ch
	}
	ch.add = lastIndex(secrets, p.PullSecret) < 0
	if ch.add || recorded == p.PullSecret {
		ch.record = p.PullSecret
	}
	return ch
}

func lastIndex(secrets []corev1.LocalObjectReference, name string) int {
	for i := len(secrets) - 1; i >= 0; i-- {
		if secrets[i].Name == name {
			return i
		}
	}
	return -1
}

// apply makes the change on a pod spec. Like the patch, it leaves no
// empty list behind.
func (ch pullSecretChange) apply(spec *corev1.PodSpec) {
	if ch.stale < 0 && !ch.add {
		return
	}
	secrets := spec.ImagePullSecrets
	if ch.stale >= 0 && ch.stale < len(secrets) {
		secrets = append(secrets[:ch.stale:ch.stale], secrets[ch.stale+1:]...)
	}
	if ch.add {
		secrets = append(secrets, corev1.LocalObjectReference{Name: ch.record})
	}
	if len(secrets) == 0 {
		secrets = nil
	}
	spec.ImagePullSecrets = secrets
}

// ops are the JSON-patch operations of the change; tp is the template's
// pointer. The stale entry goes first: the added one is appended ("-").
func (ch pullSecretChange) ops(tp string) []Operation {
	list := tp + "/spec/imagePullSecrets"
	var ops []Operation
	switch {
	case ch.stale >= 0 && ch.entries == 1 && !ch.add:
		// Rewrite leaves no empty list behind: neither does the patch.
		return []Operation{{Op: "remove", Path: list}}
	case ch.stale >= 0:
		ops = append(ops, Operation{Op: "remove", Path: list + "/" + strconv.Itoa(ch.stale)})
	}
	switch {
	case ch.add && ch.listed:
		ops = append(ops, Operation{Op: "add", Path: list + "/-", Value: map[string]interface{}{"name": ch.record}})
	case ch.add:
		ops = append(ops, Operation{Op: "add", Path: list, Value: []interface{}{map[string]interface{}{"name": ch.record}}})
	}
	return ops
}

// keepPullSecret gives the desired pod template the entry the observed
// (restored) template's plan added, when desired lacks it: withdrawing
// the plan must not change the restored pods' template (a rolling
// restart, cold).
func keepPullSecret(desired, observed *corev1.PodTemplateSpec) {
	added := observed.Annotations[AnnotationPullSecret]
	if added == "" || lastIndex(desired.Spec.ImagePullSecrets, added) >= 0 {
		return
	}
	desired.Spec.ImagePullSecrets = append(desired.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: added})
}

// stripPullSecret removes from a (copied) pod template the entry its plan
// added (AnnotationPullSecret), before the template is compared with the
// workload's.
func stripPullSecret(template *corev1.PodTemplateSpec) {
	i := lastIndex(template.Spec.ImagePullSecrets, template.Annotations[AnnotationPullSecret])
	if template.Annotations[AnnotationPullSecret] == "" || i < 0 {
		return
	}
	secrets := template.Spec.ImagePullSecrets
	secrets = append(secrets[:i:i], secrets[i+1:]...)
	if len(secrets) == 0 {
		secrets = nil
	}
	template.Spec.ImagePullSecrets = secrets
}
