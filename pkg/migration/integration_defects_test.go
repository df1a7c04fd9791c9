package migration_test

import (
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/registry"
)

// waitMigration waits for the Migration name to reach phase with a
// condition of type typ and reason, and returns it.
func (h *harness) waitMigration(name string, phase v1alpha1.MigrationPhase, typ, reason string) *v1alpha1.Migration {
	h.t.Helper()
	m := &v1alpha1.Migration{}
	h.eventually(fmt.Sprintf("Migration %s %s (%s %s)", name, phase, typ, reason), 30*time.Second, func() (bool, string) {
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, m); err != nil {
			return false, err.Error()
		}
		c := findCondition(m.Status.Conditions, typ)
		return m.Status.Phase == phase && c != nil && c.Reason == reason, fmt.Sprintf("%s %q %+v", m.Status.Phase, m.Status.Message, c)
	})
	return m
}

// event waits for an Event of reason on the object of kind and name.
func (h *harness) event(kind, name, reason string) corev1.Event {
	h.t.Helper()
	var found corev1.Event
	h.eventually("a "+reason+" Event on "+kind+" "+name, 10*time.Second, func() (bool, string) {
		var events corev1.EventList
		if err := h.c.List(h.ctx, &events, client.InNamespace(h.ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range events.Items {
			if e.Reason == reason && e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(events.Items))
	})
	return found
}

// seriesOf are the series of a metric of the controller's registry whose
// labels include want.
func seriesOf(t *testing.T, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelsInclude(m, want) {
				out = append(out, m)
			}
		}
	}
	return out
}

func labelsInclude(m *dto.Metric, want map[string]string) bool {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// counter reads a counter of the controller's metrics registry, summed
// over the series whose labels include want.
func counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range seriesOf(t, name, want) {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// manualMove creates a person's Migration of db to dest with a phase timeout.
func (h *harness) manualMove(name, dest string, timeout time.Duration) {
	h.create(&v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
			DestinationCluster: dest, Trigger: v1alpha1.TriggerManual, PhaseTimeout: &metav1.Duration{Duration: timeout}},
	})
}

// TestPhaseDeadline (defect 2): a person's move waits for a fresh
// checkpoint that never comes (the source's agent is down). Before, the
// binding stayed held until someone deleted the Migration. Now the phase
// deadline lifts the hold and applies the fallback: ColdStart moves the
// workload (FellBack), Hold leaves it where it is (Failed); both with
// condition DeadlineExceeded, an Event and the metric.
func TestPhaseDeadline(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	before := counter(t, "stateshift_migration_deadline_exceeded_total", map[string]string{"phase": "Checkpointing"})

	h.manualMove("cold", "member2", 3*time.Second)
	h.eventually("held while checkpointing", 10*time.Second, func() (bool, string) { return h.held(), "" })
	m := h.waitMigration("cold", v1alpha1.MigrationFellBack, v1alpha1.ConditionDeadlineExceeded, migration.ReasonDeadlineExceeded)
	if !strings.Contains(m.Status.Message, "Checkpointing did not end within 3s") {
		t.Fatalf("message does not say which phase timed out: %q", m.Status.Message)
	}
	h.eventually("hold lifted", 10*time.Second, func() (bool, string) { return !h.held(), "" })
	if rb := h.binding(); rb.Spec.Placement == nil || strings.Join(rb.Spec.Placement.ClusterAffinity.ClusterNames, ",") != "member2" {
		t.Fatalf("ColdStart fallback did not move the workload: %+v", rb.Spec.Placement)
	}
	h.event("Migration", "cold", migration.ReasonDeadlineExceeded)
	if got := counter(t, "stateshift_migration_deadline_exceeded_total", map[string]string{"phase": "Checkpointing"}); got < before+1 {
		t.Fatalf("deadline metric %v, want at least %v", got, before+1)
	}

	// Hold: the move is called off at the deadline, not made cold.
	// Karmada would now run it on member2 (the source kept by a graceful
	// eviction task); put it back on member1 for the second part.
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Placement, rb.Spec.GracefulEvictionTasks = nil, nil
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member1", Replicas: 1}}
	})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			return err
		}
		p.Spec.OnRestoreImpossible = v1alpha1.RestoreImpossibleHold
		return h.c.Update(h.ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	h.manualMove("held", "member2", 3*time.Second)
	m = h.waitMigration("held", v1alpha1.MigrationFailed, v1alpha1.ConditionDeadlineExceeded, migration.ReasonDeadlineExceeded)
	h.eventually("hold lifted", 10*time.Second, func() (bool, string) { return !h.held(), "" })
	if rb := h.binding(); rb.Spec.Placement != nil {
		t.Fatalf("Hold fallback moved the workload: %+v (%s)", rb.Spec.Placement, m.Status.Message)
	}
}

// movedToMember2 arms a restore of db from member1, lets Karmada move it
// to member2 and waits for the detected Migration to be Restoring; it
// returns the Migration's name and the armed checkpoint.
func (h *harness) movedToMember2() (string, string) {
	h.t.Helper()
	h.eventually("armed", 20*time.Second, func() (bool, string) {
		h.agent(true)
		op := h.overridePolicy()
		return op != nil && excludes(op) == "member1", excludes(op)
	})
	armed := h.overridePolicy().Annotations[restore.AnnotationRestoredFrom]
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	var name string
	h.eventually("the move recorded, Restoring", 15*time.Second, func() (bool, string) {
		ms := h.migrations()
		if len(ms) != 1 {
			return false, fmt.Sprintf("%d migrations", len(ms))
		}
		name = ms[0].Name
		return ms[0].Status.Phase == v1alpha1.MigrationRestoring, string(ms[0].Status.Phase)
	})
	return name, armed
}

// TestRestoreFailureFallsBackAndMarksCluster (defect 3): the destination's
// node cannot restore (a CRI-O with restore disabled starts the checkpoint
// image as an ordinary image: CreateContainerError). Before, the Migration
// waited for a healthy destination for ever. Now the pods say why, the
// Migration falls back naming the pod and the error, and the cluster is
// labelled stateshift.io/restore=false so the plan no longer targets it.
func TestRestoreFailureFallsBackAndMarksCluster(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(nil)
	name, armed := h.movedToMember2()
	h.restorePod("db-0", armed, "")
	pod := &corev1.Pod{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "db-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodPending
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "CreateContainerError", Message: "container create failed: checkpoint image found but restore is disabled"}}}}
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	m := h.waitMigration(name, v1alpha1.MigrationFellBack, v1alpha1.ConditionFellBack, "RestoreFailed")
	for _, want := range []string{"db-0", "CreateContainerError", "member2"} {
		if !strings.Contains(m.Status.Message, want) {
			t.Errorf("message does not name %s: %q", want, m.Status.Message)
		}
	}
	cl := &clusterv1alpha1.Cluster{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Name: "member2"}, cl); err != nil {
		t.Fatal(err)
	}
	if cl.Labels[migration.LabelRestore] != "false" || !strings.Contains(cl.Annotations[v1alpha1.AnnotationRestoreFailure], "CreateContainerError") {
		t.Fatalf("member2 not marked unable to restore: labels %v annotations %v", cl.Labels, cl.Annotations)
	}
	h.eventually("the plan no longer targets member2", 15*time.Second, func() (bool, string) {
		return strings.Contains(excludes(h.overridePolicy()), "member2"), excludes(h.overridePolicy())
	})
}

// TestRestoredNeedsEveryPlannedPod (defect 4): the destination renders the
// plan and reports restoredFrom, but the pod-restore webhook started the
// planned pod cold. Before, the Migration said Restored. Now it falls back
// and names the pod that started cold and why.
func TestRestoredNeedsEveryPlannedPod(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(nil)
	name, armed := h.movedToMember2()
	h.restorePod("db-0", armed, "the restore plan was armed for generation 1, rendered from generation 2")
	h.setBindingStatus("member2", armed)
	m := h.waitMigration(name, v1alpha1.MigrationFellBack, v1alpha1.ConditionFellBack, "DestinationStartedCold")
	if !strings.Contains(m.Status.Message, "db-0 started cold (the restore plan was armed for generation 1") {
		t.Fatalf("message does not name the cold pod and why: %q", m.Status.Message)
	}
}

// TestManualMoveKeepsSourceUntilRestored (defect 7): a person's move used
// to change the placement only, which Karmada treats as a reschedule that
// deletes the source at once. Now the source goes to a graceful eviction
// task whose deletion stays suppressed until the Migration ends, and the
// destination's access to the images is checked before the move.
func TestManualMoveKeepsSourceUntilRestored(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.manualMove("to-member2", "member2", time.Minute)
	h.freshCheckpoint("to-member2")
	keptTask := func(suppressed bool) func() (bool, string) {
		return func() (bool, string) {
			rb := h.binding()
			for _, task := range rb.Spec.GracefulEvictionTasks {
				if task.FromCluster == "member1" && task.Producer == migration.EvictionProducer && task.SuppressDeletion != nil && *task.SuppressDeletion == suppressed {
					return true, ""
				}
			}
			m := &v1alpha1.Migration{}
			_ = h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "to-member2"}, m)
			return false, fmt.Sprintf("clusters %v tasks %+v placement %+v; migration %s %q", rb.Spec.Clusters, rb.Spec.GracefulEvictionTasks, rb.Spec.Placement, m.Status.Phase, m.Status.Message)
		}
	}
	h.eventually("member1 kept by a suppressed graceful eviction task", 20*time.Second, keptTask(true))
	// Karmada's scheduler places it on member2; it comes up restored.
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	h.setBindingStatus("member2", h.overridePolicy().Annotations[restore.AnnotationRestoredFrom])
	h.waitMigration("to-member2", v1alpha1.MigrationRestored, v1alpha1.ConditionRestored, "Restored")
	h.eventually("member1 released once restored", 15*time.Second, keptTask(false))
}

// TestManualMoveChecksTheDestinationCanPull (defect 7): the registry wants
// credentials the policy does not give: the destination could not pull
// the checkpoint, so the move falls back before it is made.
func TestManualMoveChecksTheDestinationCanPull(t *testing.T) {
	h := startWith(t, harnessOptions{registry: []registry.Option{registry.WithAuth("agent", "agent-only")}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.manualMove("to-member2", "member2", time.Minute)
	h.freshCheckpoint("to-member2")
	m := h.waitMigration("to-member2", v1alpha1.MigrationFellBack, v1alpha1.ConditionFellBack, "ImageNotPullable")
	if !strings.Contains(m.Status.Message, "cannot pull checkpoint") {
		t.Fatalf("message does not say the image cannot be pulled: %q", m.Status.Message)
	}
}

// checkpointsOf lists the Checkpoints of pod, including those being deleted.
func (h *harness) checkpointsOf(pod string) []v1alpha1.Checkpoint {
	h.t.Helper()
	var l v1alpha1.CheckpointList
	if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns), client.MatchingLabels{migration.LabelPod: pod}); err != nil {
		h.t.Fatal(err)
	}
	return l.Items
}

// TestRetentionKeepsCheckpointWhoseImageCannotBeDeleted (defect 6): the
// registry refuses the controller's delete (it has no credentials for it).
// Before, the Checkpoint was deleted anyway and its image left with no
// record. Now it stays (being deleted, its finalizer waiting) with an
// Event, and its image is still there to be reclaimed.
func TestRetentionKeepsCheckpointWhoseImageCannotBeDeleted(t *testing.T) {
	h := startWith(t, harnessOptions{registry: []registry.Option{registry.WithAuth("agent", "agent-only")}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	h.policy(nil)
	var first []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		first = h.agent(true)
		return len(first) == 1, ""
	})
	h.eventually("the next scheduled checkpoint", 20*time.Second, func() (bool, string) { return len(h.agent(true)) == 1, "" })
	h.eventually("the old checkpoint being deleted, kept by its finalizer", 20*time.Second, func() (bool, string) {
		cp := &v1alpha1.Checkpoint{}
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, cp)
		return err == nil && cp.DeletionTimestamp != nil, fmt.Sprint(err)
	})
	h.event("Checkpoint", first[0], "ImageDeleteFailed")
	time.Sleep(2 * time.Second)
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, &v1alpha1.Checkpoint{}); err != nil {
		t.Fatalf("the Checkpoint went although its image was not deleted: %v", err)
	}
}

// TestRetentionDropsPodsThatAreGone (defect 6): keep=3 per cluster and
// pod. Before, the Checkpoints of a pod that no longer runs (a
// Deployment's pods get new names on every rollout) stayed for ever. Now
// only the one the armed plan uses stays.
func TestRetentionDropsPodsThatAreGone(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Retention.Keep = 3 })
	h.eventually("three checkpoints of db-0", 40*time.Second, func() (bool, string) {
		h.agent(true)
		n := len(h.checkpointsOf("db-0"))
		return n >= 3, fmt.Sprint(n)
	})
	if err := h.c.Delete(h.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: h.ns}}); err != nil {
		t.Fatal(err)
	}
	h.eventually("only the armed checkpoint of the gone pod left", 20*time.Second, func() (bool, string) {
		h.agent(true)
		op := h.overridePolicy()
		if op == nil {
			return false, "not armed"
		}
		armed := op.Annotations[restore.AnnotationRestoredFrom]
		var names []string
		for _, cp := range h.checkpointsOf("db-0") {
			names = append(names, cp.Name)
		}
		return len(names) == 1 && names[0] == armed, fmt.Sprintf("%v armed %s", names, armed)
	})
}

// freshCheckpoint plays the agent until the fresh Checkpoint of Migration
// mig is done.
func (h *harness) freshCheckpoint(mig string) {
	h.t.Helper()
	h.eventually("the fresh checkpoint of "+mig, 20*time.Second, func() (bool, string) {
		h.agent(true)
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns), client.MatchingLabels{migration.LabelMigration: mig}); err != nil {
			return false, err.Error()
		}
		return len(l.Items) > 0 && l.Items[0].IsFinished(), fmt.Sprint(len(l.Items))
	})
}
