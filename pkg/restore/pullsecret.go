package restore

import (
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// planPullSecret computes the change of plan p to the template at path.
func planPullSecret(obj *unstructured.Unstructured, path []string, p Plan) (pullSecretChange, error) {
	ch := pullSecretChange{stale: -1}
	names, listed, err := pullSecretNames(obj.Object, path)
	if err != nil {
		return ch, fmt.Errorf("restore %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	ch.listed, ch.entries = listed, len(names)
	recorded, _, _ := unstructured.NestedString(obj.Object, append(append([]string{}, path...), "metadata", "annotations", AnnotationPullSecret)...)
	if recorded != "" && recorded != p.PullSecret {
		ch.stale = lastIndex(names, recorded)
	}
	if p.PullSecret == "" {
		return ch, nil
	}
	ch.add = lastIndex(names, p.PullSecret) < 0
	if ch.add || recorded == p.PullSecret {
		ch.record = p.PullSecret
	}
	return ch, nil
}

// pullSecretNames lists the names in the template's imagePullSecrets and
// says whether the list exists.
func pullSecretNames(obj map[string]interface{}, templatePath []string) ([]string, bool, error) {
	raw, found, _ := unstructured.NestedFieldNoCopy(obj, append(append([]string{}, templatePath...), "spec", "imagePullSecrets")...)
	if !found || raw == nil {
		return nil, false, nil
	}
	list, ok := raw.([]interface{})
	if !ok {
		return nil, false, fmt.Errorf("pod template imagePullSecrets is a %T, not a list", raw)
	}
	names := make([]string, len(list))
	for i, e := range list {
		if m, ok := e.(map[string]interface{}); ok {
			names[i], _ = m["name"].(string)
		}
	}
	return names, true, nil
}

func lastIndex(names []string, name string) int {
	for i := len(names) - 1; i >= 0; i-- {
		if names[i] == name {
			return i
		}
	}
	return -1
}

// apply changes the pod template (a map of the copy Rewrite returns).
func (ch pullSecretChange) apply(template map[string]interface{}) error {
	list, _, _ := unstructured.NestedSlice(template, "spec", "imagePullSecrets")
	if ch.stale >= 0 && ch.stale < len(list) {
		list = append(list[:ch.stale:ch.stale], list[ch.stale+1:]...)
	}
	if ch.add {
		list = append(list, map[string]interface{}{"name": ch.record})
	}
	if ch.stale < 0 && !ch.add {
		return nil
	}
	if len(list) == 0 {
		unstructured.RemoveNestedField(template, "spec", "imagePullSecrets")
		return nil
	}
	return unstructured.SetNestedSlice(template, list, "spec", "imagePullSecrets")
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
func keepPullSecret(desiredTemplate, observedTemplate map[string]interface{}) error {
	added, _, _ := unstructured.NestedString(observedTemplate, "metadata", "annotations", AnnotationPullSecret)
	if added == "" {
		return nil
	}
	names, _, err := pullSecretNames(desiredTemplate, nil)
	if err != nil || lastIndex(names, added) >= 0 {
		return err
	}
	list, _, _ := unstructured.NestedSlice(desiredTemplate, "spec", "imagePullSecrets")
	list = append(list, map[string]interface{}{"name": added})
	return unstructured.SetNestedSlice(desiredTemplate, list, "spec", "imagePullSecrets")
}

// stripPullSecret removes from a (copied) pod template the entry its plan
// added (AnnotationPullSecret), before the template is compared with the
// workload's.
func stripPullSecret(template map[string]interface{}) {
	added, _, _ := unstructured.NestedString(template, "metadata", "annotations", AnnotationPullSecret)
	names, _, err := pullSecretNames(template, nil)
	i := lastIndex(names, added)
	if added == "" || err != nil || i < 0 {
		return
	}
	list, _, _ := unstructured.NestedSlice(template, "spec", "imagePullSecrets")
	list = append(list[:i:i], list[i+1:]...)
	if len(list) == 0 {
		unstructured.RemoveNestedField(template, "spec", "imagePullSecrets")
		return
	}
	_ = unstructured.SetNestedSlice(template, list, "spec", "imagePullSecrets")
}
