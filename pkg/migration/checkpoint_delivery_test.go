package migration

import (
	"testing"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestMirroredStatus: what the record gets of its copy's status, and when
// nothing is written.
func TestMirroredStatus(t *testing.T) {
	pending := v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointPending}
	running := v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointPushing, NodeName: "n1", Attempts: 2, Message: "pushing app"}
	failed := v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointFailed, NodeName: "n1", Message: "kubelet: checkpoint not supported"}
	cases := []struct {
		name        string
		copy, shown v1alpha1.CheckpointStatus
		write       bool
		phase       v1alpha1.CheckpointPhase
		message     string
	}{
		{"nothing reported yet", v1alpha1.CheckpointStatus{}, v1alpha1.CheckpointStatus{}, false, "", ""},
		{"a claim over nothing: the result follows", running, v1alpha1.CheckpointStatus{}, false, "", ""},
		{"a claim over a wait", running, pending, true, v1alpha1.CheckpointCheckpointing,
			"cluster member1, node n1: attempt 2 in progress (the member's Checkpoint shows its stage)"},
		{"a wait", pending, v1alpha1.CheckpointStatus{}, true, v1alpha1.CheckpointPending, "cluster member1"},
		{"a result", failed, pending, true, v1alpha1.CheckpointFailed, "cluster member1, node n1: kubelet: checkpoint not supported"},
	}
	for _, tc := range cases {
		got, write := mirroredStatus("member1", tc.copy, tc.shown)
		if write != tc.write || (write && (got.Phase != tc.phase || got.Message != tc.message)) {
			t.Errorf("%s: got %v %q %q, want %v %q %q", tc.name, write, got.Phase, got.Message, tc.write, tc.phase, tc.message)
		}
	}
}
