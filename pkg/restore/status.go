package restore

import (
	"k8s.io/apimachinery/pkg/util/validation"
)

// StatusField is the key of MigrationStatus in a workload's reflected
// status (InterpretStatus output, rb.status.aggregatedStatus[].status).
const StatusField = "stateshift"

// MigrationStatus is what a member workload says about its restore, read
// from its stateshift.io/ annotations. It says nothing of the newest
// checkpoint: no component writes that on member workloads (the
// Checkpoints in the Karmada API are where it is known), so a reflected
// latestCheckpoint would never be there (issue 11 defect 9).
type MigrationStatus struct {
	// RestoredFrom is the Checkpoint this workload was restored from.
	RestoredFrom string `json:"restoredFrom,omitempty"`
	// Ignored lists annotations present but malformed: a bad annotation
	// must not stop the rest of the status from being reflected.
	Ignored []string `json:"ignored,omitempty"`
}

// StatusFromAnnotations reads the migration state; nil when the workload
// carries none of the keys.
func StatusFromAnnotations(annotations map[string]string) *MigrationStatus {
	v, ok := annotations[AnnotationRestoredFrom]
	if !ok {
		return nil
	}
	if len(validation.IsDNS1123Subdomain(v)) != 0 {
		return &MigrationStatus{Ignored: []string{AnnotationRestoredFrom}}
	}
	return &MigrationStatus{RestoredFrom: v}
}
