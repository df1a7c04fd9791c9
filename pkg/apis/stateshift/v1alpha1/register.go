package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is the API group and version of stateshift's resources.
var GroupVersion = schema.GroupVersion{Group: "stateshift.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the types of this package.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// CheckpointKind is the kind of Checkpoint, as Karmada's interpreter sees it.
const CheckpointKind = "Checkpoint"
