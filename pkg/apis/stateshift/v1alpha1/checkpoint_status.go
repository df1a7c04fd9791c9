package v1alpha1

import "fmt"

// Claim is what stays the same through an attempt's stages (claimed,
// checkpointed, pushed): what the Karmada API's Checkpoint shows of a
// running attempt. The member's Checkpoint shows each stage; carrying
// every stage to the Karmada API would cost a write there for each.
func (s *CheckpointStatus) Claim() CheckpointStatus {
	return CheckpointStatus{
		Phase:              CheckpointCheckpointing,
		NodeName:           s.NodeName,
		StrayImages:        s.StrayImages,
		Attempts:           s.Attempts,
		LastAttemptTime:    s.LastAttemptTime,
		StartTime:          s.StartTime,
		ObservedGeneration: s.ObservedGeneration,
		Message:            fmt.Sprintf("attempt %d in progress (the member's Checkpoint shows its stage)", s.Attempts),
	}
}

// IsRunning says whether an attempt is between its claim and its result.
func (s *CheckpointStatus) IsRunning() bool {
	return s.Phase == CheckpointCheckpointing || s.Phase == CheckpointPushing
}

// ReportedBy is a member's status as the Karmada API's Checkpoint shows
// it: the message names the cluster and node it came from.
func (s *CheckpointStatus) ReportedBy(cluster string) CheckpointStatus {
	out := *s.DeepCopy()
	message := "cluster " + cluster
	if s.NodeName != "" {
		message += ", node " + s.NodeName
	}
	if s.Message != "" {
		message += ": " + s.Message
	}
	out.Message = message
	return out
}
