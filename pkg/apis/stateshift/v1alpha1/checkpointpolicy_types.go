package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestoreImpossibleAction says what a move does when no restore is possible
// (no verified checkpoint, or a destination that cannot restore).
// +kubebuilder:validation:Enum=ColdStart;Hold
type RestoreImpossibleAction string

const (
	// RestoreImpossibleColdStart lets the move go ahead: the destination
	// starts the workload from its image (state lost), with an Event and a
	// FellBack Migration that say why.
	RestoreImpossibleColdStart RestoreImpossibleAction = "ColdStart"
	// RestoreImpossibleHold keeps the workload where it runs (the binding's
	// scheduling stays suspended) until a restore is possible or a person
	// decides.
	RestoreImpossibleHold RestoreImpossibleAction = "Hold"
)

// WorkloadSelector selects workload templates in the Karmada API, like a
// Karmada PropagationPolicy's resourceSelectors (namespace is the policy's).
// +kubebuilder:validation:XValidation:rule="!(has(self.name) && has(self.labelSelector))",message="name and labelSelector are exclusive"
type WorkloadSelector struct {
	// APIVersion of the workloads; only apps/v1 is supported.
	// +kubebuilder:validation:Enum=apps/v1
	APIVersion string `json:"apiVersion"`
	// Kind of the workloads.
	// +kubebuilder:validation:Enum=StatefulSet;Deployment
	Kind string `json:"kind"`
	// Name selects one workload; empty selects by LabelSelector (or all of
	// the kind when that is empty too).
	// +optional
	Name string `json:"name,omitempty"`
	// LabelSelector selects workloads by label.
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// PullSecretReference names a Secret in the referring object's own
// namespace: it can never name a Secret of another namespace.
type PullSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CheckpointSchedule says how often a protected pod is checkpointed.
// +kubebuilder:validation:XValidation:rule="duration(self.interval) >= duration('5s')",message="interval must be at least 5s"
type CheckpointSchedule struct {
	// Interval between two scheduled checkpoints of a pod, e.g. 30s, 5m.
	// The lost window of an unplanned failover is at most about one interval.
	Interval metav1.Duration `json:"interval"`
}

// Retention bounds the checkpoints kept per pod and the finished
// Migrations kept per workload.
type Retention struct {
	// Keep is how many Succeeded Checkpoints per pod stay in the Karmada API
	// and in the registry; older ones are deleted, with their image manifests.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=3
	// +optional
	Keep int32 `json:"keep,omitempty"`
	// Migrations is how many finished Migrations (Restored, FellBack,
	// Failed) per workload stay in the Karmada API, newest first; older
	// ones are deleted, as a CronJob's history limits delete old Jobs.
	// The newest Restored one is kept besides (retention keeps the
	// checkpoints it restored from). Unfinished Migrations are never
	// deleted.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=5
	// +optional
	Migrations int32 `json:"migrations,omitempty"`
}

// CheckpointPolicySpec says which workloads are protected and how.
type CheckpointPolicySpec struct {
	// ResourceSelectors select the protected workload templates in the
	// policy's namespace.
	// +kubebuilder:validation:MinItems=1
	ResourceSelectors []WorkloadSelector `json:"resourceSelectors"`

	// Containers to checkpoint and restore; empty means every container.
	// +optional
	// +listType=set
	Containers []string `json:"containers,omitempty"`

	// Repository receives the checkpoint images (see Checkpoint.spec.repository).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$`
	Repository string `json:"repository"`

	// CredentialsSecretRef names a dockerconfigjson Secret. The agents read
	// it from their own namespace on each member; the controller reads the
	// Secret of the same name from its own namespace in the Karmada API to
	// delete old images.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// PullSecretRef names a pull-only Secret (type
	// kubernetes.io/dockerconfigjson) in the policy's namespace of the
	// Karmada API, which is the workloads' namespace. The restore plan adds
	// it to the restored pod template's imagePullSecrets (beside the
	// workload's own), so the destination's kubelet pulls the checkpoint
	// images with it, and the controller propagates it to the clusters the
	// workloads may be placed on. It is separate from CredentialsSecretRef
	// on purpose: those credentials push to and delete from the checkpoint
	// repository and are never handed to workloads; give this Secret read
	// access to the repository only. A missing Secret or one of another
	// type is refused (condition PullSecretReady False, Event
	// PullSecretRefused) and the plan is armed without it. Empty: the
	// destination pulls with what its nodes have.
	// +optional
	PullSecretRef *PullSecretReference `json:"pullSecretRef,omitempty"`

	// Builder that makes the images.
	// +kubebuilder:default=buildah
	// +optional
	Builder Builder `json:"builder,omitempty"`

	// Compression of the native builder's layer.
	// +kubebuilder:default=none
	// +optional
	Compression LayerCompression `json:"compression,omitempty"`

	// Schedule of the checkpoints that keep the restore armed.
	Schedule CheckpointSchedule `json:"schedule"`

	// Retention of Succeeded checkpoints per pod.
	// +optional
	Retention Retention `json:"retention,omitempty"`

	// OnRestoreImpossible: ColdStart (default) or Hold.
	// +kubebuilder:default=ColdStart
	// +optional
	OnRestoreImpossible RestoreImpossibleAction `json:"onRestoreImpossible,omitempty"`
}

// PodCheckpointRef is the latest verified checkpoint of one pod.
type PodCheckpointRef struct {
	// Pod name.
	Pod string `json:"pod"`
	// Cluster running the pod.
	Cluster string `json:"cluster"`
	// Checkpoint is the Checkpoint's name.
	Checkpoint string `json:"checkpoint"`
	// Images maps container -> checkpoint image by digest.
	// +optional
	Images map[string]string `json:"images,omitempty"`
	// CompletionTime of the Checkpoint.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// ProtectedWorkload is the state of one selected workload.
type ProtectedWorkload struct {
	// APIVersion, Kind, Name of the workload template.
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	// Clusters running it now (its ResourceBinding's spec.clusters); while
	// a move has emptied the binding, the clusters it ran on before.
	// +optional
	Clusters []string `json:"clusters,omitempty"`
	// Pods and their latest verified checkpoints.
	// +optional
	Pods []PodCheckpointRef `json:"pods,omitempty"`
	// Armed says whether a restore OverridePolicy is in place, so any other
	// cluster Karmada picks next restores from ArmedCheckpoint.
	Armed bool `json:"armed"`
	// ArmedCheckpoint is the checkpoint the armed plan restores from.
	// +optional
	ArmedCheckpoint string `json:"armedCheckpoint,omitempty"`
	// Message says why the workload is not armed, if it is not.
	// +optional
	Message string `json:"message,omitempty"`
	// LatestCheckpointTime is the oldest of its running pods' latest
	// verified checkpoints: an unplanned failover now loses what the
	// workload did since then (the data-loss window). Empty while a pod has
	// none.
	// +optional
	LatestCheckpointTime *metav1.Time `json:"latestCheckpointTime,omitempty"`
	// Conditions: Protected (False, with a reason, when a failover now would
	// lose more than about StaleIntervals schedule intervals or start cold).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConditionPullSecretReady (on a CheckpointPolicy with PullSecretRef) says
// whether the pull Secret exists in the policy's namespace with the type
// kubernetes.io/dockerconfigjson; False refuses it (reasons below).
const ConditionPullSecretReady = "PullSecretReady"

// Reasons of the PullSecretReady condition.
const (
	// PullSecretReasonAccepted: the Secret exists and is a dockerconfigjson.
	PullSecretReasonAccepted = "Accepted"
	// PullSecretReasonNotFound: no Secret of that name in the namespace.
	PullSecretReasonNotFound = "SecretNotFound"
	// PullSecretReasonWrongType: the Secret is not a dockerconfigjson.
	PullSecretReasonWrongType = "WrongSecretType"
	// PullSecretReasonInvalid: a dockerconfigjson that does not parse.
	PullSecretReasonInvalid = "InvalidSecret"
)

// ConditionProtected says whether a protected workload's restore is armed
// with a recent verified checkpoint (see the Protected* reasons).
const ConditionProtected = "Protected"

// Reasons of the Protected condition.
const (
	// ProtectedReasonProtected: armed, every pod checkpointed recently.
	ProtectedReasonProtected = "Protected"
	// ProtectedReasonNotPropagated: Karmada has not placed the workload yet.
	ProtectedReasonNotPropagated = "NotPropagated"
	// ProtectedReasonNoCheckpoint: a running pod has no verified checkpoint
	// of the current template: a move now starts cold.
	ProtectedReasonNoCheckpoint = "NoCheckpoint"
	// ProtectedReasonStale: the latest verified checkpoint of a pod is
	// older than StaleIntervals schedule intervals.
	ProtectedReasonStale = "Stale"
	// ProtectedReasonDisarmed: no restore plan is armed (the message says why).
	ProtectedReasonDisarmed = "Disarmed"
	// ProtectedReasonFailing: the latest checkpoint attempt of a pod
	// failed, or the controller cannot do its round for the workload.
	ProtectedReasonFailing = "Failing"
)

// StaleIntervals is how many schedule intervals old the latest verified
// checkpoint may be before the workload is not Protected (reason Stale).
// Checkpoints take time and retry: one missed interval is normal.
const StaleIntervals = 3

// CheckpointPolicyStatus is what the controller does for the policy.
type CheckpointPolicyStatus struct {
	// ObservedGeneration is the generation the status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Workloads selected by the policy.
	// +optional
	Workloads []ProtectedWorkload `json:"workloads,omitempty"`
	// ProtectedWorkloads counts the selected workloads; ArmedWorkloads those armed.
	// +optional
	ProtectedWorkloads int32 `json:"protectedWorkloads,omitempty"`
	// +optional
	ArmedWorkloads int32 `json:"armedWorkloads,omitempty"`
	// UnprotectedWorkloads counts the workloads whose Protected condition is
	// not True.
	// +optional
	UnprotectedWorkloads int32 `json:"unprotectedWorkloads"`
	// OldestCheckpointTime is the oldest LatestCheckpointTime of the
	// workloads: the policy's widest data-loss window.
	// +optional
	OldestCheckpointTime *metav1.Time `json:"oldestCheckpointTime,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CheckpointPolicy protects workloads: the controller keeps a recent
// verified Checkpoint of each of their pods and keeps the restore armed so
// that any cluster Karmada moves them to restores their state.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ckptpol,categories=stateshift
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.schedule.interval`
// +kubebuilder:printcolumn:name="Keep",type=integer,JSONPath=`.spec.retention.keep`
// +kubebuilder:printcolumn:name="Workloads",type=integer,JSONPath=`.status.protectedWorkloads`
// +kubebuilder:printcolumn:name="Armed",type=integer,JSONPath=`.status.armedWorkloads`
// +kubebuilder:printcolumn:name="Unprotected",type=integer,JSONPath=`.status.unprotectedWorkloads`
// +kubebuilder:printcolumn:name="Oldest Checkpoint",type=date,JSONPath=`.status.oldestCheckpointTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Repository",type=string,JSONPath=`.spec.repository`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CheckpointPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CheckpointPolicySpec   `json:"spec"`
	Status CheckpointPolicyStatus `json:"status,omitempty"`
}

// CheckpointPolicyList is a list of CheckpointPolicies.
// +kubebuilder:object:root=true
type CheckpointPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CheckpointPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CheckpointPolicy{}, &CheckpointPolicyList{})
}

// DefaultMigrationHistory is Retention.Migrations when unset.
const DefaultMigrationHistory = 5

// MigrationHistory is Retention.Migrations with its default.
func (p *CheckpointPolicy) MigrationHistory() int {
	if p.Spec.Retention.Migrations < 1 {
		return DefaultMigrationHistory
	}
	return int(p.Spec.Retention.Migrations)
}

// KeepOrDefault is Retention.Keep with its default.
func (p *CheckpointPolicy) KeepOrDefault() int {
	if p.Spec.Retention.Keep < 1 {
		return 3
	}
	return int(p.Spec.Retention.Keep)
}

// OnRestoreImpossibleOrDefault is OnRestoreImpossible with its default.
func (p *CheckpointPolicy) OnRestoreImpossibleOrDefault() RestoreImpossibleAction {
	if p.Spec.OnRestoreImpossible == "" {
		return RestoreImpossibleColdStart
	}
	return p.Spec.OnRestoreImpossible
}
