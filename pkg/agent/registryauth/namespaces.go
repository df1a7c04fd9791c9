package registryauth

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationAllowedNamespaces on a registry Secret lists, comma-separated,
// the namespaces whose Checkpoints may push with it ("*": every one). A
// Secret is chosen by name, never by registry host, and this binds it to
// the tenants it belongs to: a tenant naming another tenant's Secret gets
// a refusal, not that tenant's robot account.
const AnnotationAllowedNamespaces = "stateshift.io/allowed-namespaces"

// AllowsNamespace says whether secret may serve a Checkpoint of namespace
// ns. Without the annotation the answer is yes unless required is set.
func AllowsNamespace(secret *corev1.Secret, ns string, required bool) error {
	raw, ok := secret.Annotations[AnnotationAllowedNamespaces]
	if !ok {
		if required {
			return fmt.Errorf("registry Secret %s/%s has no annotation %s: it serves no namespace (the agent runs with --require-secret-namespaces)",
				secret.Namespace, secret.Name, AnnotationAllowedNamespaces)
		}
		return nil
	}
	var listed []string
	for _, n := range strings.Split(raw, ",") {
		n = strings.TrimSpace(n)
		if n == "*" || (n != "" && n == ns) {
			return nil
		}
		if n != "" {
			listed = append(listed, n)
		}
	}
	return fmt.Errorf("registry Secret %s/%s may not be used by namespace %s (its annotation %s allows %v)",
		secret.Namespace, secret.Name, ns, AnnotationAllowedNamespaces, listed)
}
