package restore

import (
	"encoding/json"
	"fmt"
	"strings"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PolicyNamePrefix starts the name of the OverridePolicy that carries a
// workload's restore plan.
const PolicyNamePrefix = "stateshift-restore-"

// LabelManagedBy marks the OverridePolicies stateshift owns.
const LabelManagedBy = "app.kubernetes.io/managed-by"

// OverridePolicy builds the Karmada OverridePolicy that carries plan p for
// workload obj to every cluster except exclude (the clusters running the
// workload now, so the source is never rewritten). An OverridePolicy is the
// only cluster-aware mutation in Karmada's binding controller (ensureWork:
// ReviseReplica -> overrides -> StatefulFailoverInjection -> Work), hence
// the choice; see docs/design-restore.md. An empty exclude list is refused:
// it would match every cluster, the source included.
func OverridePolicy(obj *unstructured.Unstructured, p Plan, exclude []string) (*policyv1alpha1.OverridePolicy, error) {
	if len(exclude) == 0 {
		return nil, fmt.Errorf("restore %s/%s: no cluster to exclude: the policy would rewrite the source too", obj.GetNamespace(), obj.GetName())
	}
	plaintext, err := overriders(obj, p)
	if err != nil {
		return nil, err
	}
	return &policyv1alpha1.OverridePolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: policyv1alpha1.SchemeGroupVersion.String(), Kind: "OverridePolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        PolicyName(obj),
			Namespace:   obj.GetNamespace(),
			Labels:      map[string]string{LabelManagedBy: "stateshift"},
			Annotations: map[string]string{AnnotationRestoredFrom: p.Checkpoint},
		},
		Spec: policyv1alpha1.OverrideSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{
				APIVersion: obj.GetAPIVersion(),
				Kind:       obj.GetKind(),
				Namespace:  obj.GetNamespace(),
				Name:       obj.GetName(),
			}},
			OverrideRules: []policyv1alpha1.RuleWithCluster{{
				TargetCluster: &policyv1alpha1.ClusterAffinity{ExcludeClusters: append([]string(nil), exclude...)},
				Overriders:    policyv1alpha1.Overriders{Plaintext: plaintext},
			}},
		},
	}, nil
}

// ReceiverRule is the override rule that carries plan p to cluster only:
// a cluster that already runs the workload and receives replicas moved
// from another (p.KeepPods says how many of its pods stay). The
// OverridePolicy's first rule excludes it, as it excludes every cluster
// running the workload.
func ReceiverRule(obj *unstructured.Unstructured, p Plan, cluster string) (policyv1alpha1.RuleWithCluster, error) {
	if cluster == "" {
		return policyv1alpha1.RuleWithCluster{}, fmt.Errorf("restore %s/%s: receiver rule without a cluster", obj.GetNamespace(), obj.GetName())
	}
	plaintext, err := overriders(obj, p)
	if err != nil {
		return policyv1alpha1.RuleWithCluster{}, err
	}
	return policyv1alpha1.RuleWithCluster{
		TargetCluster: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{cluster}},
		Overriders:    policyv1alpha1.Overriders{Plaintext: plaintext},
	}, nil
}

// overriders are the plaintext overriders of Patches(obj, p).
func overriders(obj *unstructured.Unstructured, p Plan) ([]policyv1alpha1.PlaintextOverrider, error) {
	ops, err := Patches(obj, p)
	if err != nil {
		return nil, err
	}
	plaintext := make([]policyv1alpha1.PlaintextOverrider, 0, len(ops))
	for _, op := range ops {
		var value apiextensionsv1.JSON
		if op.Value != nil {
			raw, err := json.Marshal(op.Value)
			if err != nil {
				return nil, fmt.Errorf("restore %s/%s: %s: %w", obj.GetNamespace(), obj.GetName(), op, err)
			}
			value.Raw = raw
		}
		plaintext = append(plaintext, policyv1alpha1.PlaintextOverrider{
			Path:     op.Path,
			Operator: policyv1alpha1.OverriderOperator(op.Op),
			Value:    value,
		})
	}
	return plaintext, nil
}

// PolicyName is the OverridePolicy's name for a workload; the kind is part
// of it so a Deployment and a StatefulSet of the same name do not collide.
func PolicyName(obj *unstructured.Unstructured) string {
	return PolicyNameFor(obj.GetKind(), obj.GetName())
}

// PolicyNameFor is PolicyName of a workload of that kind and name.
func PolicyNameFor(kind, name string) string {
	name = PolicyNamePrefix + strings.ToLower(kind) + "-" + name
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}
