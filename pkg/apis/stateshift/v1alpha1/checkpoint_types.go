package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Builder names the backend that turns a checkpoint archive into an OCI image.
// +kubebuilder:validation:Enum=buildah;native
type Builder string

const (
	// BuilderBuildah runs buildah inside the agent's image (from scratch, add,
	// config, commit and push with --format oci).
	BuilderBuildah Builder = "buildah"
	// BuilderNative writes the image with go-containerregistry, streaming the
	// archive once: faster and without buildah's local storage.
	BuilderNative Builder = "native"
)

// LayerCompression says how the native builder stores the archive layer.
// +kubebuilder:validation:Enum=none;gzip
type LayerCompression string

const (
	// LayerCompressionNone stores the archive as it is (fastest on a local registry).
	LayerCompressionNone LayerCompression = "none"
	// LayerCompressionGzip gzips the layer (smaller over a slow network).
	LayerCompressionGzip LayerCompression = "gzip"
)

// CheckpointPhase is where a Checkpoint is in its life.
// +kubebuilder:validation:Enum=Pending;Checkpointing;Pushing;Succeeded;Failed
type CheckpointPhase string

const (
	CheckpointPending       CheckpointPhase = "Pending"
	CheckpointCheckpointing CheckpointPhase = "Checkpointing"
	CheckpointPushing       CheckpointPhase = "Pushing"
	CheckpointSucceeded     CheckpointPhase = "Succeeded"
	CheckpointFailed        CheckpointPhase = "Failed"
)

// Condition types of a Checkpoint.
const (
	// ConditionCheckpointed: the kubelet wrote an archive for every container.
	ConditionCheckpointed = "Checkpointed"
	// ConditionPushed: every image was pushed and read back by digest.
	ConditionPushed = "Pushed"
	// ConditionReady: the Checkpoint is usable for a restore.
	ConditionReady = "Ready"
)

// SecretReference names a Secret of type kubernetes.io/dockerconfigjson.
type SecretReference struct {
	// Name of the Secret. It is read from the checkpoint agent's own
	// namespace: a Checkpoint cannot make the agent read other namespaces.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// CheckpointSpec says which pod to checkpoint and where the images go.
type CheckpointSpec struct {
	// PodName is the pod, in the Checkpoint's namespace, to checkpoint.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PodName string `json:"podName"`

	// Containers to checkpoint; empty means every container of the pod.
	// +optional
	// +listType=set
	Containers []string `json:"containers,omitempty"`

	// Repository receives the images, e.g. registry.example.com/team/app.
	// Each container's image is tagged <pod>-<container>-<checkpoint uid
	// prefix> and recorded by digest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$`
	Repository string `json:"repository"`

	// CredentialsSecretRef names the registry credentials; none means anonymous.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// Builder that makes the image.
	// +kubebuilder:default=buildah
	// +optional
	Builder Builder `json:"builder,omitempty"`

	// Compression of the layer written by the native builder (buildah 1.28
	// always gzips the layer it pushes).
	// +kubebuilder:default=none
	// +optional
	Compression LayerCompression `json:"compression,omitempty"`

	// TimeoutSeconds bounds the kubelet's checkpoint call; 0 is the
	// runtime's default.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// ContainerCheckpoint is the result for one container.
type ContainerCheckpoint struct {
	// Name of the container.
	Name string `json:"name"`
	// Image is the checkpoint image by digest: repository@sha256:....
	Image string `json:"image"`
	// ArchiveBytes is the size of the kubelet's archive.
	ArchiveBytes int64 `json:"archiveBytes"`
	// RootfsImage is the image the container ran (from config.dump); the
	// destination node must have it to restore.
	// +optional
	RootfsImage string `json:"rootfsImage,omitempty"`
	// RootfsImageRef is the digest form of RootfsImage when the runtime knew it.
	// +optional
	RootfsImageRef string `json:"rootfsImageRef,omitempty"`
}

// StrayImage is an image an attempt pushed that did not become the
// Checkpoint's result: its verification failed, a later container of the
// pod failed, the status write failed or the agent was killed after the
// push. It is a memory dump like any checkpoint image; retention deletes it
// (after the same origin check as status.containers), so that no pushed
// manifest is known to nobody.
type StrayImage struct {
	// Container whose archive the image holds.
	Container string `json:"container"`
	// Image by digest: repository@sha256:..., always under spec.repository.
	Image string `json:"image"`
	// Attempt that pushed it.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// Reason the image is not the result: the attempt's failure reason
	// (e.g. VerifyFailed) or Interrupted (found in the agent's journal
	// after a restart).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// CheckpointTimings are the durations of each stage.
type CheckpointTimings struct {
	// Checkpoint: the kubelet call, all containers.
	// +optional
	Checkpoint *metav1.Duration `json:"checkpoint,omitempty"`
	// Image: building, pushing and verifying the images.
	// +optional
	Image *metav1.Duration `json:"image,omitempty"`
	// Total: from the first attempt's start to completion.
	// +optional
	Total *metav1.Duration `json:"total,omitempty"`
}

// CheckpointStatus is what the agent did.
type CheckpointStatus struct {
	// Phase of the Checkpoint.
	// +optional
	Phase CheckpointPhase `json:"phase,omitempty"`
	// NodeName is the node whose agent executed the Checkpoint.
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// Containers holds one verified image per checkpointed container.
	// +optional
	// +listType=map
	// +listMapKey=name
	Containers []ContainerCheckpoint `json:"containers,omitempty"`
	// StrayImages are images attempts pushed that are not the result (see
	// StrayImage): recorded before or with the failure, or after a
	// restart from the agent's journal. Retention deletes them once the
	// Checkpoint is finished, and with the Checkpoint.
	// +optional
	// +listType=map
	// +listMapKey=image
	StrayImages []StrayImage `json:"strayImages,omitempty"`
	// ArchiveBytes is the sum of the archives' sizes.
	// +optional
	ArchiveBytes int64 `json:"archiveBytes,omitempty"`
	// ArchiveSize is ArchiveBytes for people, e.g. "12.4 MiB" (FormatSize).
	// +optional
	ArchiveSize string `json:"archiveSize,omitempty"`
	// Attempts made so far (retries are bounded).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// LastAttemptTime is when the latest attempt started; retries back off from it.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// StartTime of the first attempt.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime when the phase became Succeeded or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Timings per stage.
	// +optional
	Timings CheckpointTimings `json:"timings,omitempty"`
	// Message is a human-readable reason for the current phase.
	// +optional
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the generation the status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Checkpointed, Pushed, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Checkpoint is one checkpoint of one pod's containers, turned into OCI
// checkpoint images in a registry. The agent on the pod's node executes it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ckpt,categories=stateshift
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.podName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.archiveSize`
// +kubebuilder:printcolumn:name="Took",type=string,JSONPath=`.status.timings.total`
// +kubebuilder:printcolumn:name="Completed",type=date,JSONPath=`.status.completionTime`
// +kubebuilder:printcolumn:name="Images",type=string,JSONPath=`.status.containers[*].image`,priority=1
// +kubebuilder:printcolumn:name="Bytes",type=integer,format=int64,JSONPath=`.status.archiveBytes`,priority=1
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Checkpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CheckpointSpec   `json:"spec"`
	Status CheckpointStatus `json:"status,omitempty"`
}

// CheckpointList is a list of Checkpoints.
// +kubebuilder:object:root=true
type CheckpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Checkpoint `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Checkpoint{}, &CheckpointList{})
}

// IsFinished says whether the Checkpoint reached a terminal phase.
func (c *Checkpoint) IsFinished() bool {
	return c.Status.Phase == CheckpointSucceeded || c.Status.Phase == CheckpointFailed
}

// FormatSize writes a byte count for people in binary units, e.g. 512 B,
// 12.4 MiB, 1.5 GiB (ArchiveSize).
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
