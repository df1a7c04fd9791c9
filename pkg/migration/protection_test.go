package migration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func checkpointOf(name, cluster, pod string, phase v1alpha1.CheckpointPhase, created time.Time, msg string) v1alpha1.Checkpoint {
	return v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelCluster: cluster}, CreationTimestamp: metav1.NewTime(created)},
		Spec:       v1alpha1.CheckpointSpec{PodName: pod},
		Status:     v1alpha1.CheckpointStatus{Phase: phase, Message: msg},
	}
}

func TestProtectedCondition(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	fresh := v1alpha1.ProtectedWorkload{Kind: "StatefulSet", Name: "db", Clusters: []string{"m1"}, Armed: true, ArmedCheckpoint: "db-1",
		Pods: []v1alpha1.PodCheckpointRef{{Pod: "db-0", Cluster: "m1", Checkpoint: "db-1", CompletionTime: at(20 * time.Second)}}}
	ok := checkpointOf("db-1", "m1", "db-0", v1alpha1.CheckpointSucceeded, now.Add(-25*time.Second), "")
	failed := checkpointOf("db-2", "m1", "db-0", v1alpha1.CheckpointFailed, now.Add(-5*time.Second), "kubelet: checkpoint not supported")
	running := checkpointOf("db-3", "m1", "db-0", v1alpha1.CheckpointPushing, now.Add(-time.Second), "")
	with := func(f func(*v1alpha1.ProtectedWorkload)) *v1alpha1.ProtectedWorkload {
		pw := fresh.DeepCopy()
		f(pw)
		return pw
	}
	for _, tc := range []struct {
		name    string
		pw      *v1alpha1.ProtectedWorkload
		current []v1alpha1.Checkpoint
		err     error
		reason  string
		msg     string
	}{
		{"fresh and armed", &fresh, []v1alpha1.Checkpoint{ok}, nil, v1alpha1.ProtectedReasonProtected, "armed with db-1"},
		{"a failed attempt after it", &fresh, []v1alpha1.Checkpoint{ok, failed}, nil, v1alpha1.ProtectedReasonFailing, "checkpoint not supported"},
		{"a retry in progress after the failure", &fresh, []v1alpha1.Checkpoint{ok, failed, running}, nil, v1alpha1.ProtectedReasonFailing, "db-2"},
		{"a success after the failure", &fresh, []v1alpha1.Checkpoint{failed, checkpointOf("db-4", "m1", "db-0", v1alpha1.CheckpointSucceeded, now, "")}, nil, v1alpha1.ProtectedReasonProtected, ""},
		{"the round failed", &fresh, nil, errors.New("registry down"), v1alpha1.ProtectedReasonFailing, "registry down"},
		{"not propagated", with(func(pw *v1alpha1.ProtectedWorkload) {
			pw.Clusters, pw.Pods, pw.Message = nil, nil, "no ResourceBinding yet"
		}), nil, nil, v1alpha1.ProtectedReasonNotPropagated, "no ResourceBinding"},
		{"a pod without checkpoint", with(func(pw *v1alpha1.ProtectedWorkload) {
			pw.Pods = append(pw.Pods, v1alpha1.PodCheckpointRef{Pod: "db-1", Cluster: "m1"})
		}), []v1alpha1.Checkpoint{ok}, nil, v1alpha1.ProtectedReasonNoCheckpoint, "pod db-1 on m1"},
		{"stale", with(func(pw *v1alpha1.ProtectedWorkload) { pw.Pods[0].CompletionTime = at(31 * time.Second) }), []v1alpha1.Checkpoint{ok}, nil, v1alpha1.ProtectedReasonStale, "31s old (schedule every 10s, stale after 30s)"},
		{"disarmed", with(func(pw *v1alpha1.ProtectedWorkload) { pw.Armed, pw.Message = false, "the pod template changed" }), []v1alpha1.Checkpoint{ok}, nil, v1alpha1.ProtectedReasonDisarmed, "template changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ProtectedCondition(tc.pw, tc.current, 10*time.Second, now, tc.err)
			wantTrue := tc.reason == v1alpha1.ProtectedReasonProtected
			if c.Type != v1alpha1.ConditionProtected || c.Reason != tc.reason || (c.Status == metav1.ConditionTrue) != wantTrue || !strings.Contains(c.Message, tc.msg) {
				t.Fatalf("got %s=%s reason %s: %q; want reason %s with %q", c.Type, c.Status, c.Reason, c.Message, tc.reason, tc.msg)
			}
		})
	}
}

func TestMarkProtectedKeepsTransitionTimeAndSummarizes(t *testing.T) {
	now := time.Now()
	long := metav1.NewTime(now.Add(-time.Hour))
	done := metav1.NewTime(now.Add(-10 * time.Second))
	older := metav1.NewTime(now.Add(-20 * time.Second))
	p := &v1alpha1.CheckpointPolicy{Spec: v1alpha1.CheckpointPolicySpec{Schedule: v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: time.Minute}}}}
	p.Status.Workloads = []v1alpha1.ProtectedWorkload{{Kind: "StatefulSet", Name: "db", Conditions: []metav1.Condition{{
		Type: v1alpha1.ConditionProtected, Status: metav1.ConditionTrue, Reason: v1alpha1.ProtectedReasonProtected, LastTransitionTime: long}}}}
	db := v1alpha1.ProtectedWorkload{Kind: "StatefulSet", Name: "db", Clusters: []string{"m1"}, Armed: true,
		Pods: []v1alpha1.PodCheckpointRef{{Pod: "db-0", Cluster: "m1", CompletionTime: &done}, {Pod: "db-1", Cluster: "m2", CompletionTime: &older}}}
	markProtected(p, &db, nil, now, nil)
	web := v1alpha1.ProtectedWorkload{Kind: "Deployment", Name: "web", Clusters: []string{"m1"}, Message: "not armed"}
	markProtected(p, &web, nil, now, nil)
	c := meta.FindStatusCondition(db.Conditions, v1alpha1.ConditionProtected)
	if c == nil || c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Equal(&long) {
		t.Fatalf("db Protected %+v: want True since an hour ago", c)
	}
	if !db.LatestCheckpointTime.Equal(&older) {
		t.Fatalf("db window starts %v, want the older pod's %v", db.LatestCheckpointTime, older)
	}
	status := v1alpha1.CheckpointPolicyStatus{Workloads: []v1alpha1.ProtectedWorkload{db, web}}
	summarize(&status)
	if status.UnprotectedWorkloads != 1 || !status.OldestCheckpointTime.Equal(&older) {
		t.Fatalf("summary: %d unprotected, oldest %v", status.UnprotectedWorkloads, status.OldestCheckpointTime)
	}
}

func TestSetReady(t *testing.T) {
	for phase, want := range map[v1alpha1.MigrationPhase]metav1.ConditionStatus{
		"": metav1.ConditionFalse, v1alpha1.MigrationCheckpointing: metav1.ConditionFalse, v1alpha1.MigrationRestoring: metav1.ConditionFalse,
		v1alpha1.MigrationRestored: metav1.ConditionTrue, v1alpha1.MigrationFellBack: metav1.ConditionFalse, v1alpha1.MigrationFailed: metav1.ConditionFalse,
	} {
		m := &v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: v1alpha1.MigrationStatus{Phase: phase, Message: "because"}}
		setReady(m)
		c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady)
		reason := string(phase)
		if phase == "" {
			reason = "Pending"
		}
		if c == nil || c.Status != want || c.Reason != reason || c.Message != "because" || c.ObservedGeneration != 2 {
			t.Errorf("phase %q: Ready %+v, want %s reason %s", phase, c, want, reason)
		}
	}
}

// TestStateCollector: the gauges come from the cached objects at scrape
// time, and only once this replica leads.
func TestStateCollector(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	done := metav1.NewTime(now.Add(-90 * time.Second))
	p := &v1alpha1.CheckpointPolicy{ObjectMeta: metav1.ObjectMeta{Name: "protect", Namespace: "shop"},
		Spec: v1alpha1.CheckpointPolicySpec{Schedule: v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: 30 * time.Second}}}}
	p.Status.ArmedWorkloads = 1
	p.Status.Workloads = []v1alpha1.ProtectedWorkload{{Kind: "StatefulSet", Name: "db", Armed: true,
		Pods:       []v1alpha1.PodCheckpointRef{{Pod: "db-0", Cluster: "m1", CompletionTime: &done}, {Pod: "db-0", Cluster: "m2"}},
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionProtected, Status: metav1.ConditionFalse, Reason: "NoCheckpoint"}}}}
	start := metav1.NewTime(now.Add(-5 * time.Minute))
	m := &v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "move", Namespace: "shop"},
		Spec:   v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{Kind: "StatefulSet", Name: "db"}, Trigger: v1alpha1.TriggerManual},
		Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationCheckpointing, StartTime: &start}}
	finished := &v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: "shop"}, Status: v1alpha1.MigrationStatus{Phase: v1alpha1.MigrationRestored}}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var c client.Reader = fake.NewClientBuilder().WithScheme(scheme).WithObjects(p, m, finished).Build()
	elected := make(chan struct{})
	col := &stateCollector{}
	col.source.Store(&stateSource{reader: c, elected: elected, now: func() time.Time { return now }})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("before leading: %d series, %v", n, err)
	}
	close(elected)
	want := `
# HELP stateshift_checkpoint_age_seconds Age of the oldest of the latest verified checkpoints of a protected workload's pods on one cluster: what an unplanned failover of that cluster now would lose.
# TYPE stateshift_checkpoint_age_seconds gauge
stateshift_checkpoint_age_seconds{cluster="m1",kind="StatefulSet",namespace="shop",policy="protect",workload="db"} 90
# HELP stateshift_checkpoint_interval_seconds Schedule interval of a CheckpointPolicy.
# TYPE stateshift_checkpoint_interval_seconds gauge
stateshift_checkpoint_interval_seconds{namespace="shop",policy="protect"} 30
# HELP stateshift_migration_unfinished_seconds Time since an unfinished Migration started, with its current phase.
# TYPE stateshift_migration_unfinished_seconds gauge
stateshift_migration_unfinished_seconds{kind="StatefulSet",migration="move",namespace="shop",phase="Checkpointing",trigger="Manual",workload="db"} 300
# HELP stateshift_workload_armed 1 when a protected workload's restore plan is armed, else 0.
# TYPE stateshift_workload_armed gauge
stateshift_workload_armed{kind="StatefulSet",namespace="shop",policy="protect",workload="db"} 1
# HELP stateshift_workload_protected 1 when a protected workload's Protected condition is True, else 0; reason is the condition's reason (Protected, NotPropagated, NoCheckpoint, Stale, Disarmed, Failing).
# TYPE stateshift_workload_protected gauge
stateshift_workload_protected{kind="StatefulSet",namespace="shop",policy="protect",reason="NoCheckpoint",workload="db"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stateshift_checkpoint_age_seconds", "stateshift_checkpoint_interval_seconds",
		"stateshift_migration_unfinished_seconds", "stateshift_workload_armed", "stateshift_workload_protected"); err != nil {
		t.Fatal(err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 13002342: "12.4 MiB", 3 << 30: "3.0 GiB", 5 << 40: "5.0 TiB"} {
		if got := v1alpha1.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
