package interpreter

import (
	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/stateshift/stateshift/pkg/restore"
)

type retainInterpreter func(desired, observed *unstructured.Unstructured) (*unstructured.Unstructured, error)

var retainInterpreters = map[schema.GroupVersionKind]retainInterpreter{
	statefulSetGVK: retainWorkload,
	deploymentGVK:  retainWorkload,
}

// retainWorkload is Karmada's retention (for a Deployment: the replicas of
// the retain-replicas label; for a StatefulSet Karmada has none and would
// not call any) followed by restore.Retain. It may change desired.
func retainWorkload(desired, observed *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	out, err := nativeRetain(desired, observed)
	if err != nil {
		return nil, err
	}
	return restore.Retain(out, observed)
}

func nativeRetain(desired, observed *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if !karmada.HookEnabled(desired.GroupVersionKind(), configv1alpha1.InterpreterOperationRetain) {
		return desired, nil
	}
	return karmada.Retain(desired, observed)
}
