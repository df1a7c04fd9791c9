package restore

import (
	"strings"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The keys live in pkg/apis (well_known_constants.go); these names are
// what the restore, interpreter and member packages have always used.

// Prefix starts every annotation stateshift writes on a workload.
const Prefix = v1alpha1.KeyPrefix

// Keys of the newest checkpoint on a member workload. No component writes
// them and InterpretStatus does not reflect them (issue 11 defect 9: the
// newest checkpoint is known from the Checkpoints in the Karmada API);
// Retain keeps them, as every stateshift.io/ key, where someone set them.
const (
	AnnotationLatestCheckpoint       = v1alpha1.AnnotationLatestCheckpoint
	AnnotationLatestCheckpointImages = v1alpha1.AnnotationLatestCheckpointImages
	AnnotationLatestCheckpointTime   = v1alpha1.AnnotationLatestCheckpointTime
)

// Annotations written by Rewrite on the workload and on its pod template.
const (
	AnnotationRestoredFrom       = v1alpha1.AnnotationRestoredFrom
	AnnotationOriginalImages     = v1alpha1.AnnotationOriginalImages
	AnnotationRestoreImages      = v1alpha1.AnnotationRestoreImages
	AnnotationPodImages          = v1alpha1.AnnotationPodImages
	AnnotationSourceImages       = v1alpha1.AnnotationSourceImages
	AnnotationTemplateGeneration = v1alpha1.AnnotationTemplateGeneration
	AnnotationPullSecret         = v1alpha1.AnnotationPullSecret
)

// AnnotationKarmadaGeneration is what Karmada writes on every member
// object it renders: the generation of the resource template in the
// Karmada API (workv1alpha2.ResourceTemplateGenerationAnnotationKey).
const AnnotationKarmadaGeneration = "resourcetemplate.karmada.io/generation"

// AnnotationRestoreCompleted (workload only, never the pod template: a
// template change would roll the pods) names the checkpoint whose restore
// finished on this member; the pod-restore webhook then starts a pod that
// still claims it from the original image: restore once.
const AnnotationRestoreCompleted = v1alpha1.AnnotationRestoreCompleted

// Pod annotations written by the member's pod-restore webhook.
const (
	AnnotationColdStart      = v1alpha1.AnnotationColdStart
	AnnotationRestoredImages = v1alpha1.AnnotationRestoredImages
)

// IsStateshiftAnnotation says whether key belongs to stateshift.
func IsStateshiftAnnotation(key string) bool { return strings.HasPrefix(key, Prefix) }
