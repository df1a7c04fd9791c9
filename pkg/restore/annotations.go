package restore

import "strings"

// Prefix starts every annotation stateshift writes on a workload.
const Prefix = "stateshift.io/"

// Annotations written on member workloads by stateshift's agent and read
// back by the interpreter's InterpretStatus (they describe the newest
// checkpoint taken there).
const (
	// AnnotationLatestCheckpoint is the name of the newest Checkpoint of the
	// workload. At most 63 characters, so Karmada's StatefulFailoverInjection
	// can copy it into a label (statePreservation jsonPath
	// {.stateshift.latestCheckpoint}).
	AnnotationLatestCheckpoint = Prefix + "latest-checkpoint"
	// AnnotationLatestCheckpointImages is a JSON object container -> image by digest.
	AnnotationLatestCheckpointImages = Prefix + "latest-checkpoint-images"
	// AnnotationLatestCheckpointTime is when that checkpoint completed (RFC 3339).
	AnnotationLatestCheckpointTime = Prefix + "latest-checkpoint-time"
)

// Annotations written by Rewrite on the workload and on its pod template.
const (
	// AnnotationRestoredFrom is the Checkpoint the workload was restored from.
	AnnotationRestoredFrom = Prefix + "restored-from"
	// AnnotationOriginalImages is a JSON object container -> image the
	// workload ran before the rewrite; Retain compares the desired manifest
	// with it to tell "plan withdrawn" from "user changed the image".
	AnnotationOriginalImages = Prefix + "original-images"
	// AnnotationPodImages (pod template only) is a JSON object pod name ->
	// container -> image, for multi-replica StatefulSets whose pods restore
	// from different checkpoints; a member-side mutation applies it.
	AnnotationPodImages = Prefix + "pod-images"
	// AnnotationSourceImages (pod template only) is a JSON object container
	// -> image the checkpointed container ran (Plan.SourceImages).
	AnnotationSourceImages = Prefix + "source-images"
	// AnnotationTemplateGeneration (pod template only) is the Karmada
	// template generation the plan was armed for (Plan.TemplateGeneration).
	AnnotationTemplateGeneration = Prefix + "template-generation"
)

// AnnotationKarmadaGeneration is what Karmada writes on every member
// object it renders: the generation of the resource template in the
// Karmada API (workv1alpha2.ResourceTemplateGenerationAnnotationKey).
const AnnotationKarmadaGeneration = "resourcetemplate.karmada.io/generation"

// AnnotationRestoreCompleted (workload only, never the pod template: a
// template change would roll the pods) names the checkpoint whose restore
// finished on this member. Retain writes it when the plan is withdrawn from
// a restored workload; the member's pod-restore webhook then starts a pod
// that still claims that checkpoint (a StatefulSet pod re-created, a
// Deployment scaled up) from the template's original image: restore once.
const AnnotationRestoreCompleted = Prefix + "restore-completed"

// Pod annotations written by the member's pod-restore webhook.
const (
	// AnnotationColdStart says why a pod created from a restored template
	// starts from its original image instead of a checkpoint.
	AnnotationColdStart = Prefix + "cold-start"
	// AnnotationRestoredImages (pod only) is a JSON object container ->
	// checkpoint image the pod restores from, when it differs per pod.
	AnnotationRestoredImages = Prefix + "restored-images"
)

// IsStateshiftAnnotation says whether key belongs to stateshift.
func IsStateshiftAnnotation(key string) bool { return strings.HasPrefix(key, Prefix) }
