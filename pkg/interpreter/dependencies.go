package interpreter

import (
	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type dependenciesInterpreter func(obj *unstructured.Unstructured) ([]configv1alpha1.DependentObjectReference, error)

// dependenciesInterpreters are Karmada's (ConfigMaps, Secrets, PVCs,
// ServiceAccounts of the pod template): they need no informer, the native
// interpreter reads them from the object alone.
var dependenciesInterpreters = map[schema.GroupVersionKind]dependenciesInterpreter{
	statefulSetGVK: karmada.GetDependencies,
	deploymentGVK:  karmada.GetDependencies,
}
