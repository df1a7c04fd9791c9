package migration

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestRearmWait: the re-arm right after a workload's own move waits only
// while moves run elsewhere (deferral > 0), only for a workload that has a
// plan, and at most deferral past the move's completion.
func TestRearmWait(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	restored := func(ago time.Duration) *v1alpha1.Migration {
		return &v1alpha1.Migration{Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationRestored, CompletionTime: &metav1.Time{Time: now.Add(-ago)}}}
	}
	const deferral = 2 * time.Minute
	for _, tc := range []struct {
		name     string
		last     *v1alpha1.Migration
		armed    bool
		deferral time.Duration
		want     time.Duration
	}{
		{"moved 30s ago, moves elsewhere: waits the rest of the bound", restored(30 * time.Second), true, deferral, 90 * time.Second},
		{"moved 3m ago: the bound has passed", restored(3 * time.Minute), true, deferral, 0},
		{"no move in progress, no member lost", restored(30 * time.Second), true, 0, 0},
		{"no plan yet: armed at once", restored(30 * time.Second), false, deferral, 0},
		{"never moved", nil, true, deferral, 0},
		{"a restore without completion time", &v1alpha1.Migration{Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationRestored}}, true, deferral, 0},
	} {
		if got := rearmWait(tc.last, tc.armed, tc.deferral, now); got != tc.want {
			t.Errorf("%s: rearmWait = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPolicyStatusSpacedInStorms: in a storm (deferral > 0) a policy's
// status written less than stormStatusSpacing ago waits, unless its Ready
// condition changes; outside a storm, or never written by this process, it
// is written at once.
func TestPolicyStatusSpacedInStorms(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	c := &Controller{Now: func() time.Time { return now }}
	ready := func(s metav1.ConditionStatus) v1alpha1.CheckpointPolicyStatus {
		return v1alpha1.CheckpointPolicyStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: s}}}
	}
	p := &v1alpha1.CheckpointPolicy{ObjectMeta: metav1.ObjectMeta{UID: "policy-1"}, Status: ready(metav1.ConditionTrue)}
	storm := CheckpointReconciler{Controller: c, deferral: 2 * time.Minute}
	if got := storm.statusWait(p, ready(metav1.ConditionTrue)); got != 0 {
		t.Errorf("never written: waits %v", got)
	}
	c.policyStatusWrites.Store(p.UID, now.Add(-5*time.Second))
	if got := storm.statusWait(p, ready(metav1.ConditionTrue)); got != 10*time.Second {
		t.Errorf("written 5s ago in a storm: waits %v, want 10s", got)
	}
	if got := storm.statusWait(p, ready(metav1.ConditionFalse)); got != 0 {
		t.Errorf("Ready turns False: waits %v", got)
	}
	if got := (CheckpointReconciler{Controller: c}).statusWait(p, ready(metav1.ConditionTrue)); got != 0 {
		t.Errorf("no storm: waits %v", got)
	}
	c.policyStatusWrites.Store(p.UID, now.Add(-20*time.Second))
	if got := storm.statusWait(p, ready(metav1.ConditionTrue)); got != 0 {
		t.Errorf("written 20s ago: waits %v", got)
	}
}
