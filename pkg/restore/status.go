package restore

import (
	"encoding/json"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// StatusField is the key of MigrationStatus in a workload's reflected
// status (InterpretStatus output, rb.status.aggregatedStatus[].status).
const StatusField = "stateshift"

// MigrationStatus is what a member workload says about its checkpoints and
// its restore, read from its stateshift.io/ annotations.
type MigrationStatus struct {
	// LatestCheckpoint is the newest Checkpoint's name (a label-safe value).
	LatestCheckpoint string `json:"latestCheckpoint,omitempty"`
	// LatestCheckpointImages maps container -> checkpoint image by digest.
	LatestCheckpointImages map[string]string `json:"latestCheckpointImages,omitempty"`
	// LatestCheckpointTime is when it completed (RFC 3339).
	LatestCheckpointTime string `json:"latestCheckpointTime,omitempty"`
	// RestoredFrom is the Checkpoint this workload was restored from.
	RestoredFrom string `json:"restoredFrom,omitempty"`
	// Ignored lists annotations present but malformed: a bad annotation
	// must not stop the rest of the status from being reflected.
	Ignored []string `json:"ignored,omitempty"`
}

// StatusFromAnnotations reads the migration state; nil when the workload
// carries none of the keys.
func StatusFromAnnotations(annotations map[string]string) *MigrationStatus {
	var s MigrationStatus
	found := false
	ignore := func(key string) { s.Ignored = append(s.Ignored, key) }
	if v, ok := annotations[AnnotationLatestCheckpoint]; ok {
		found = true
		if len(validation.IsValidLabelValue(v)) == 0 && v != "" {
			s.LatestCheckpoint = v
		} else {
			ignore(AnnotationLatestCheckpoint)
		}
	}
	if v, ok := annotations[AnnotationLatestCheckpointImages]; ok {
		found = true
		var images map[string]string
		if err := json.Unmarshal([]byte(v), &images); err == nil && validImages(images) {
			s.LatestCheckpointImages = images
		} else {
			ignore(AnnotationLatestCheckpointImages)
		}
	}
	if v, ok := annotations[AnnotationLatestCheckpointTime]; ok {
		found = true
		if _, err := time.Parse(time.RFC3339, v); err == nil {
			s.LatestCheckpointTime = v
		} else {
			ignore(AnnotationLatestCheckpointTime)
		}
	}
	if v, ok := annotations[AnnotationRestoredFrom]; ok {
		found = true
		if len(validation.IsDNS1123Subdomain(v)) == 0 {
			s.RestoredFrom = v
		} else {
			ignore(AnnotationRestoredFrom)
		}
	}
	if !found {
		return nil
	}
	sort.Strings(s.Ignored)
	return &s
}

func validImages(images map[string]string) bool {
	for _, image := range images {
		if CheckDigestImage(image) != nil {
			return false
		}
	}
	return true
}
