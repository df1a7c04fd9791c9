package migration_test

import (
	"fmt"
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

// counter reads a counter of the controller's metrics registry, summed
// over the series whose labels include want.
func counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
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
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) { rb.Spec.Placement = nil })
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
