package migration

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Selects says whether a workload template (apiVersion, kind, name,
// labels) is selected by sel; a malformed label selector is an error, not a
// silent "no".
func Selects(sel v1alpha1.WorkloadSelector, apiVersion, kind, name string, lbls map[string]string) (bool, error) {
	if sel.APIVersion != apiVersion || sel.Kind != kind {
		return false, nil
	}
	if sel.Name != "" {
		return sel.Name == name, nil
	}
	if sel.LabelSelector == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel.LabelSelector)
	if err != nil {
		return false, fmt.Errorf("label selector: %w", err)
	}
	return s.Matches(labels.Set(lbls)), nil
}

// PolicySelects says whether any of the policy's selectors selects the workload.
func PolicySelects(p *v1alpha1.CheckpointPolicy, apiVersion, kind, name string, lbls map[string]string) (bool, error) {
	for i, sel := range p.Spec.ResourceSelectors {
		ok, err := Selects(sel, apiVersion, kind, name, lbls)
		if err != nil {
			return false, fmt.Errorf("CheckpointPolicy %s/%s selector %d: %w", p.Namespace, p.Name, i, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}
