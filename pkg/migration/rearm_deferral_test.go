package migration

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestRearmWait: while moves run elsewhere (deferral > 0) a re-arm that
// became due waits at most deferral past when it did: a newer verified
// checkpoint past its completion, a move's exclusion past the move's
// completion. Without a plan, or with nothing due, it is armed at once.
func TestRearmWait(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	const deferral = 2 * time.Minute
	verified := func(ago time.Duration) *v1alpha1.Checkpoint {
		return &v1alpha1.Checkpoint{Status: v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointSucceeded, CompletionTime: &metav1.Time{Time: now.Add(-ago)}}}
	}
	restored := func(ago time.Duration) *v1alpha1.Migration {
		return &v1alpha1.Migration{Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationRestored, CompletionTime: &metav1.Time{Time: now.Add(-ago)}}}
	}
	armed := verified(7 * time.Minute)
	for _, tc := range []struct {
		name          string
		armed, newest *v1alpha1.Checkpoint
		last          *v1alpha1.Migration
		deferral      time.Duration
		want          time.Duration
	}{
		{"a newer checkpoint 30s ago: the rest of its bound", armed, verified(30 * time.Second), nil, deferral, 90 * time.Second},
		{"a newer checkpoint 3m ago: armed now", armed, verified(3 * time.Minute), nil, deferral, 0},
		{"moved 30s ago, nothing newer: the rest of the move's bound", armed, armed, restored(30 * time.Second), deferral, 90 * time.Second},
		{"moved 3m ago, nothing newer: nothing due", armed, armed, restored(3 * time.Minute), deferral, 0},
		{"both due: the earlier bound", armed, verified(100 * time.Second), restored(30 * time.Second), deferral, 20 * time.Second},
		{"nothing newer, no move: nothing to wait for", armed, armed, nil, deferral, 0},
		{"no move in progress, no member lost", armed, verified(30 * time.Second), restored(30 * time.Second), 0, 0},
		{"no plan (or its checkpoint unknown): armed at once", nil, verified(30 * time.Second), restored(30 * time.Second), deferral, 0},
		{"an armed checkpoint without completion time", &v1alpha1.Checkpoint{}, verified(30 * time.Second), nil, deferral, 0},
	} {
		if got := rearmWait(tc.armed, tc.newest, tc.last, tc.deferral, now); got != tc.want {
			t.Errorf("%s: rearmWait = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPolicyStatusSpacing: in a storm (deferral > 0) a policy's status
// written less than stormStatusSpacing ago waits, unless its Ready
// condition changes; outside a storm it waits in proportion to its
// workloads; never written by this process, it is written at once.
func TestPolicyStatusSpacing(t *testing.T) {
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
	quiet := CheckpointReconciler{Controller: c}
	if got := quiet.statusWait(p, ready(metav1.ConditionTrue)); got != 0 {
		t.Errorf("no storm, no workloads: waits %v", got)
	}
	withWorkloads := func(n int) v1alpha1.CheckpointPolicyStatus {
		s := ready(metav1.ConditionTrue)
		s.Workloads = make([]v1alpha1.ProtectedWorkload, n)
		return s
	}
	// Outside storms the spacing grows with the policy: 150 ms a workload,
	// 15 s at most.
	if got := quiet.statusWait(p, withWorkloads(40)); got != time.Second {
		t.Errorf("no storm, 40 workloads, written 5s ago: waits %v, want 1s", got)
	}
	if got := quiet.statusWait(p, withWorkloads(1000)); got != 10*time.Second {
		t.Errorf("no storm, 1000 workloads, written 5s ago: waits %v, want 10s", got)
	}
	if got := quiet.statusWait(p, withWorkloads(30)); got != 0 {
		t.Errorf("no storm, 30 workloads, written 5s ago: waits %v", got)
	}
	c.policyStatusWrites.Store(p.UID, now.Add(-20*time.Second))
	if got := storm.statusWait(p, ready(metav1.ConditionTrue)); got != 0 {
		t.Errorf("written 20s ago: waits %v", got)
	}
}

// TestRetentionWaitsOutStorms: outside a storm every round runs retention;
// in one (deferral > 0) a policy's retention runs once every deferral, so
// a storm's deletes wait for its end, or the deferral at most.
func TestRetentionWaitsOutStorms(t *testing.T) {
	now := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	c := &Controller{Now: func() time.Time { return now }}
	p := &v1alpha1.CheckpointPolicy{ObjectMeta: metav1.ObjectMeta{UID: "policy-1"}}
	quiet := CheckpointReconciler{Controller: c}
	storm := CheckpointReconciler{Controller: c, deferral: 2 * time.Minute}
	if !quiet.retentionDue(p) || !quiet.retentionDue(p) {
		t.Fatal("outside a storm a round skipped retention")
	}
	now = now.Add(30 * time.Second)
	if storm.retentionDue(p) {
		t.Error("in a storm 30s after the last retention: ran again")
	}
	now = now.Add(89 * time.Second)
	if storm.retentionDue(p) {
		t.Error("in a storm 119s after the last retention: ran again")
	}
	now = now.Add(2 * time.Second)
	if !storm.retentionDue(p) {
		t.Error("in a storm 121s after the last retention: still waiting past the deferral")
	}
	if storm.retentionDue(p) {
		t.Error("in a storm right after a retention: ran again")
	}
	if !quiet.retentionDue(p) {
		t.Error("after the storm: retention still waits")
	}
	other := &v1alpha1.CheckpointPolicy{ObjectMeta: metav1.ObjectMeta{UID: "policy-2"}}
	if !storm.retentionDue(other) {
		t.Error("a policy never retained by this process waits in a storm")
	}
}

// TestPassesPacedOnlyWhileAMemberIsLost: a policy's passes are spaced by
// stormPassSpacing only after a pass that found a member lost.
func TestPassesPacedOnlyWhileAMemberIsLost(t *testing.T) {
	now := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	key := types.NamespacedName{Namespace: "shop", Name: "protect"}
	var p passPacer
	if got := p.wait(key, now); got != 0 {
		t.Errorf("first pass waits %v", got)
	}
	p.passed(key, now, false)
	if got := p.wait(key, now.Add(100*time.Millisecond)); got != 0 {
		t.Errorf("no member lost: the next pass waits %v", got)
	}
	p.passed(key, now, true)
	if got := p.wait(key, now.Add(500*time.Millisecond)); got != stormPassSpacing-500*time.Millisecond {
		t.Errorf("member lost, 0.5s after the last pass: waits %v, want %v", got, stormPassSpacing-500*time.Millisecond)
	}
	if got := p.wait(types.NamespacedName{Namespace: "shop", Name: "other"}, now); got != 0 {
		t.Errorf("another policy waits %v", got)
	}
	if got := p.wait(key, now.Add(stormPassSpacing)); got != 0 {
		t.Errorf("member lost, a spacing after the last pass: waits %v", got)
	}
	p.passed(key, now.Add(stormPassSpacing), false)
	if got := p.wait(key, now.Add(stormPassSpacing+time.Millisecond)); got != 0 {
		t.Errorf("member back: waits %v", got)
	}
}
