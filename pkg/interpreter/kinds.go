package interpreter

import (
	"github.com/karmada-io/karmada/pkg/resourceinterpreter/default/native"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The kinds this webhook serves.
var (
	statefulSetGVK = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	deploymentGVK  = appsv1.SchemeGroupVersion.WithKind("Deployment")
	checkpointGVK  = stateshiftv1alpha1.GroupVersion.WithKind(stateshiftv1alpha1.CheckpointKind)
)

// karmada is Karmada's native interpreter, built the way Karmada builds it
// (resourceinterpreter.NewResourceInterpreter -> native.NewDefaultInterpreter):
// it holds only static maps, no informers or listers, so one value serves
// every request.
var karmada = native.NewDefaultInterpreter()

// served lists every kind for logs and metrics labels.
var served = map[schema.GroupVersionKind]bool{statefulSetGVK: true, deploymentGVK: true, checkpointGVK: true}
