package v1alpha1

// Every stateshift.io label and annotation key, in one place (as Karmada's
// well_known_constants.go). Other packages refer to these constants; a key
// written in one place and read in another cannot drift apart.

// KeyPrefix starts every label and annotation stateshift writes.
const KeyPrefix = "stateshift.io/"

// Labels the controller puts on the Checkpoints and Migrations it creates.
const (
	// LabelWorkload is <kind lowercased>.<name> of the protected workload.
	LabelWorkload = KeyPrefix + "workload"
	// LabelCluster is the member cluster running the pod (Checkpoint), or
	// the cordoned cluster (Cordon Migration).
	LabelCluster = KeyPrefix + "cluster"
	// LabelPolicy is the CheckpointPolicy's name.
	LabelPolicy = KeyPrefix + "policy"
	// LabelPod is the pod's name.
	LabelPod = KeyPrefix + "pod"
	// LabelNode is the node the pod ran on when the controller asked for
	// its checkpoint: only that node's agent looks at the Checkpoint (a
	// pod that moved since is found by the agent of its new node).
	LabelNode = KeyPrefix + "node"
	// LabelMigration names the Migration that asked for a fresh checkpoint.
	LabelMigration = KeyPrefix + "migration"
	// LabelRestore on a Karmada Cluster set to "false" says the member
	// cannot restore checkpoints: the restore plan never targets it, and a
	// move to it falls back per policy. The controller sets it itself when
	// pods on the member failed to restore (AnnotationRestoreFailure says why).
	LabelRestore = KeyPrefix + "restore"
	// LabelPullSecret "true" marks a PropagationPolicy the controller owns
	// that carries a pull Secret (CheckpointPolicy pullSecretRef) to
	// members; its annotation of the same key names the Secret (a Secret's
	// name may be longer than a label value).
	LabelPullSecret = KeyPrefix + "pull-secret"
)

// Annotations on objects in the Karmada API.
const (
	// AnnotationMove on a Migration the controller recorded for a move it
	// saw: "<source clusters>-><destination>".
	AnnotationMove = KeyPrefix + "move"
	// AnnotationHeldBy on a ResourceBinding names the Migration that set
	// spec.suspension.scheduling, so that stateshift lifts only its own hold.
	AnnotationHeldBy = KeyPrefix + "held-by"
	// AnnotationTemplateHash on a Checkpoint is the hash of the workload's
	// pod template when the Checkpoint was created.
	AnnotationTemplateHash = KeyPrefix + "template-hash"
	// AnnotationTemplateImages on a Checkpoint is a JSON object container ->
	// image of the workload's pod template when it was created.
	AnnotationTemplateImages = KeyPrefix + "template-images"
	// AnnotationRestoreFailure on a Karmada Cluster says why the controller
	// labelled it LabelRestore=false (the pods that failed to restore).
	AnnotationRestoreFailure = KeyPrefix + "restore-failure"
)

// Annotations on member workloads, their pod templates and pods (written
// by the restore plan, Retain and the member's pod-restore webhook).
const (
	// AnnotationLatestCheckpoint is the name of the newest Checkpoint of the workload.
	AnnotationLatestCheckpoint = KeyPrefix + "latest-checkpoint"
	// AnnotationLatestCheckpointImages is a JSON object container -> image by digest.
	AnnotationLatestCheckpointImages = KeyPrefix + "latest-checkpoint-images"
	// AnnotationLatestCheckpointTime is when that checkpoint completed (RFC 3339).
	AnnotationLatestCheckpointTime = KeyPrefix + "latest-checkpoint-time"
	// AnnotationRestoredFrom is the Checkpoint the workload (or pod) was restored from.
	AnnotationRestoredFrom = KeyPrefix + "restored-from"
	// AnnotationOriginalImages is a JSON object container -> image the workload ran before the rewrite.
	AnnotationOriginalImages = KeyPrefix + "original-images"
	// AnnotationRestoreImages (pod template) is a JSON object container -> checkpoint image every
	// pod of a pending restore restores (the template's containers keep their own images; the
	// member's pod-restore webhook sets these on the pods).
	AnnotationRestoreImages = KeyPrefix + "restore-images"
	// AnnotationPodImages (pod template) is a JSON object pod name -> container -> image.
	AnnotationPodImages = KeyPrefix + "pod-images"
	// AnnotationSourceImages (pod template) is a JSON object container -> image the checkpointed container ran.
	AnnotationSourceImages = KeyPrefix + "source-images"
	// AnnotationTemplateGeneration (pod template) is the Karmada template generation the plan was armed for.
	AnnotationTemplateGeneration = KeyPrefix + "template-generation"
	// AnnotationPullSecret (pod template) names the imagePullSecrets entry
	// the plan added (the policy's pullSecretRef), so that Retain can tell
	// it from the workload's own.
	AnnotationPullSecret = KeyPrefix + "pull-secret"
	// AnnotationRestoreCompleted (workload) names the checkpoint whose restore finished on the member.
	AnnotationRestoreCompleted = KeyPrefix + "restore-completed"
	// AnnotationColdStart (pod) says why a pod of a restored template started from its original image.
	AnnotationColdStart = KeyPrefix + "cold-start"
	// AnnotationRestoredImages (pod) is a JSON object container -> checkpoint image the pod restores from.
	AnnotationRestoredImages = KeyPrefix + "restored-images"
)
