package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MigrationTrigger is what started a move.
// +kubebuilder:validation:Enum=Manual;Cordon;Failover;Rebalance;Eviction;PlacementChange
type MigrationTrigger string

const (
	// TriggerManual: a person created the Migration with a destination.
	TriggerManual MigrationTrigger = "Manual"
	// TriggerCordon: the source cluster got the cluster.karmada.io/unschedulable taint.
	TriggerCordon MigrationTrigger = "Cordon"
	// TriggerFailover: the source cluster is not Ready or failed over (NoExecute taint, cluster failover).
	TriggerFailover MigrationTrigger = "Failover"
	// TriggerRebalance: a WorkloadRebalancer (rescheduleTriggeredAt) moved it.
	TriggerRebalance MigrationTrigger = "Rebalance"
	// TriggerEviction: a graceful eviction task moved it.
	TriggerEviction MigrationTrigger = "Eviction"
	// TriggerPlacementChange: the binding's clusters changed for another reason.
	TriggerPlacementChange MigrationTrigger = "PlacementChange"
)

// MigrationPhase is where a move is.
// +kubebuilder:validation:Enum=Pending;Checkpointing;Armed;Restoring;Restored;FellBack;Failed
type MigrationPhase string

const (
	MigrationPending       MigrationPhase = "Pending"
	MigrationCheckpointing MigrationPhase = "Checkpointing"
	MigrationArmed         MigrationPhase = "Armed"
	MigrationRestoring     MigrationPhase = "Restoring"
	MigrationRestored      MigrationPhase = "Restored"
	MigrationFellBack      MigrationPhase = "FellBack"
	MigrationFailed        MigrationPhase = "Failed"
)

// Condition types of a Migration.
const (
	// ConditionCheckpointReady: a verified checkpoint for the move exists.
	ConditionCheckpointReady = "CheckpointReady"
	// ConditionRestoreArmed: the restore OverridePolicy is in place.
	ConditionRestoreArmed = "RestoreArmed"
	// ConditionRestored: the destination runs, restored from the checkpoint.
	ConditionRestored = "Restored"
	// ConditionFellBack: no restore was possible (reason says why).
	ConditionFellBack = "FellBack"
	// ConditionDeadlineExceeded: a phase outlived spec.phaseTimeout.
	ConditionDeadlineExceeded = "DeadlineExceeded"
)

// WorkloadReference names a workload template in the Migration's namespace.
type WorkloadReference struct {
	// +kubebuilder:validation:Enum=apps/v1
	APIVersion string `json:"apiVersion"`
	// +kubebuilder:validation:Enum=StatefulSet;Deployment
	Kind string `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// MigrationSpec says which workload moves, and where when a person asks.
// +kubebuilder:validation:XValidation:rule="self.trigger != 'Manual' || (has(self.destinationCluster) && size(self.destinationCluster) > 0)",message="a Manual migration needs destinationCluster"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
type MigrationSpec struct {
	// WorkloadRef is the workload (a template in the Karmada API).
	WorkloadRef WorkloadReference `json:"workloadRef"`
	// DestinationCluster for a person's planned move.
	// +optional
	DestinationCluster string `json:"destinationCluster,omitempty"`
	// Trigger: Manual for a person's move; the controller sets the others
	// for moves it detects.
	// +kubebuilder:default=Manual
	// +optional
	Trigger MigrationTrigger `json:"trigger,omitempty"`
	// PhaseTimeout bounds every phase (Checkpointing, Armed, Restoring);
	// default 10m. On expiry the scheduling hold is lifted and the policy's
	// fallback applies (condition DeadlineExceeded, an Event, a metric).
	// +optional
	PhaseTimeout *metav1.Duration `json:"phaseTimeout,omitempty"`
}

// DefaultPhaseTimeout is MigrationSpec.PhaseTimeout's default: a fresh
// checkpoint takes seconds to a few minutes for large memory; a restore
// as long as an image pull and a start.
const DefaultPhaseTimeout = 10 * time.Minute

// PhaseTimeoutOrDefault is PhaseTimeout with its default.
func (s *MigrationSpec) PhaseTimeoutOrDefault() time.Duration {
	if s.PhaseTimeout == nil || s.PhaseTimeout.Duration <= 0 {
		return DefaultPhaseTimeout
	}
	return s.PhaseTimeout.Duration
}

// MigrationCheckpoint is a checkpoint a move restores from.
type MigrationCheckpoint struct {
	// Name of the Checkpoint.
	Name string `json:"name"`
	// Pod it checkpointed.
	Pod string `json:"pod"`
	// Cluster the checkpointed pod ran on: pods of one name run in
	// several clusters (a Divided StatefulSet runs a db-0 in each).
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Into is the destination's pod that restores it when that is not the
	// pod of the same name: a replica moved into a cluster that already
	// runs others restores into the cluster's next new pod (member1's db-0
	// into member2's db-1).
	// +optional
	Into string `json:"into,omitempty"`
	// Images maps container -> checkpoint image by digest.
	// +optional
	Images map[string]string `json:"images,omitempty"`
}

// MigrationDurations are the durations of the phases.
type MigrationDurations struct {
	// Checkpoint: start -> Armed (fresh checkpoint taken, verified and armed).
	// +optional
	Checkpoint *metav1.Duration `json:"checkpoint,omitempty"`
	// Restore: Armed (or start) -> Restored.
	// +optional
	Restore *metav1.Duration `json:"restore,omitempty"`
	// Total: start -> completion.
	// +optional
	Total *metav1.Duration `json:"total,omitempty"`
}

// MigrationStatus is the story of the move.
type MigrationStatus struct {
	// +optional
	Phase MigrationPhase `json:"phase,omitempty"`
	// SourceClusters ran the workload before the move.
	// +optional
	SourceClusters []string `json:"sourceClusters,omitempty"`
	// StartReplicas are the replicas each cluster ran when a planned move
	// (Manual, Cordon) started: the bound clusters that are not sources
	// keep their pods, and one given more replicas restores the moved ones
	// into its new pods. A detected move (Karmada already moved the
	// workload) reads where it ran from its Checkpoints instead.
	// +optional
	StartReplicas map[string]int32 `json:"startReplicas,omitempty"`
	// DestinationCluster runs it after the move.
	// +optional
	DestinationCluster string `json:"destinationCluster,omitempty"`
	// Checkpoints used by the restore.
	// +optional
	Checkpoints []MigrationCheckpoint `json:"checkpoints,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// PhaseTime is when the current phase began (its deadline counts from it).
	// +optional
	PhaseTime *metav1.Time `json:"phaseTime,omitempty"`
	// +optional
	ArmedTime *metav1.Time `json:"armedTime,omitempty"`
	// +optional
	RestoredTime *metav1.Time `json:"restoredTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// +optional
	Durations MigrationDurations `json:"durations,omitempty"`
	// Message is a human-readable reason for the current phase.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Migration is one move of one workload between member clusters, made by a
// person (spec.destinationCluster) or recorded by the controller for a move
// it detected. Its Ready condition is True once the move Restored the
// workload, and False with the phase as its reason before that and after a
// FellBack or Failed move: `kubectl wait --for=condition=Ready` waits for a
// restored move.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mig,categories=stateshift
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.workloadRef.kind`
// +kubebuilder:printcolumn:name="Workload",type=string,JSONPath=`.spec.workloadRef.name`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="From",type=string,JSONPath=`.status.sourceClusters[*]`
// +kubebuilder:printcolumn:name="To",type=string,JSONPath=`.status.destinationCluster`
// +kubebuilder:printcolumn:name="Checkpoint",type=string,JSONPath=`.status.checkpoints[*].name`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Took",type=string,JSONPath=`.status.durations.total`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Migration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MigrationSpec   `json:"spec"`
	Status MigrationStatus `json:"status,omitempty"`
}

// MigrationList is a list of Migrations.
// +kubebuilder:object:root=true
type MigrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Migration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Migration{}, &MigrationList{})
}

// IsFinished says whether the move reached a terminal phase.
func (m *Migration) IsFinished() bool {
	switch m.Status.Phase {
	case MigrationRestored, MigrationFellBack, MigrationFailed:
		return true
	}
	return false
}
