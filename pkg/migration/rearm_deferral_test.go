package migration

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestRearmWait: while moves run elsewhere (deferral > 0) a re-arm waits,
// only for a workload that has a plan, as long as the armed checkpoint is
// no older than interval + deferral, and, after the workload's own move,
// at most deferral past the move's completion.
func TestRearmWait(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	const interval, deferral = 5 * time.Minute, 2 * time.Minute
	armed := func(ago time.Duration) *v1alpha1.Checkpoint {
		return &v1alpha1.Checkpoint{Status: v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointSucceeded, CompletionTime: &metav1.Time{Time: now.Add(-ago)}}}
	}
	restored := func(ago time.Duration) *v1alpha1.Migration {
		return &v1alpha1.Migration{Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationRestored, CompletionTime: &metav1.Time{Time: now.Add(-ago)}}}
	}
	for _, tc := range []struct {
		name     string
		armed    *v1alpha1.Checkpoint
		last     *v1alpha1.Migration
		deferral time.Duration
		want     time.Duration
	}{
		{"armed 1m ago, never moved: until the armed one is interval+deferral old", armed(time.Minute), nil, deferral, 6 * time.Minute},
		{"armed 6m30s ago: 30s left", armed(6*time.Minute + 30*time.Second), nil, deferral, 30 * time.Second},
		{"armed 8m ago: the bound has passed", armed(8 * time.Minute), nil, deferral, 0},
		{"moved 30s ago: the rest of the move's bound", armed(4 * time.Minute), restored(30 * time.Second), deferral, 90 * time.Second},
		{"moved 3m ago: only the armed checkpoint's bound", armed(time.Minute), restored(3 * time.Minute), deferral, 6 * time.Minute},
		{"no move in progress, no member lost", armed(time.Minute), restored(30 * time.Second), 0, 0},
		{"no plan (or its checkpoint unknown): armed at once", nil, restored(30 * time.Second), deferral, 0},
		{"an armed checkpoint without completion time", &v1alpha1.Checkpoint{}, nil, deferral, 0},
	} {
		if got := rearmWait(tc.armed, tc.last, interval, tc.deferral, now); got != tc.want {
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
