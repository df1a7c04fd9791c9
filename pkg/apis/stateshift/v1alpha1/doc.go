// Package v1alpha1 holds the stateshift.io/v1alpha1 API: Checkpoint (one
// checkpoint of one pod, executed by the checkpoint agent on the pod's node)
// and, with the migration work, CheckpointPolicy and Migration.
// +kubebuilder:object:generate=true
// +groupName=stateshift.io
package v1alpha1
