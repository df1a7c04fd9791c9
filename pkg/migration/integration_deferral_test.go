package migration_test

import (
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestScheduledCheckpointsWaitForMoves: while a Migration is in progress
// anywhere in the federation, a due scheduled checkpoint waits, at most
// Options.ScheduledCheckpointDeferral past the time it fell due (a move
// that never ends must not stop protection); once no move is in progress
// the schedule is the interval again. The migrations controller is off so
// that the Migration stays in the phase the test gives it.
func TestScheduledCheckpointsWaitForMoves(t *testing.T) {
	const interval, deferral = 5 * time.Second, 15 * time.Second
	h := startWith(t, harnessOptions{controllers: []string{"*", "-migrations"}, scheduledDeferral: deferral})
	first := h.protectedOnMember1(interval)
	// The schedule counts from the completion the agent recorded (whole
	// seconds), not from when this test saw it: on a loaded machine the
	// two are seconds apart.
	completed := first.Status.CompletionTime.Time
	seen := map[string]bool{first.Name: true}

	// Another workload fails over and is restoring.
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "other-failover", Namespace: h.ns},
		Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "other"},
			Trigger: v1alpha1.TriggerFailover},
	}
	h.create(m)
	m.Status.Phase = v1alpha1.MigrationRestoring
	if err := h.c.Status().Update(h.ctx, m); err != nil {
		t.Fatal(err)
	}

	// Due at completed+interval, deferred until completed+interval+deferral.
	// The check stops 2 s short of that (a checkpoint may come on time).
	if got := h.newCheckpoints(seen, time.Until(completed.Add(interval+deferral-2*time.Second))); len(got) > 0 {
		t.Fatalf("scheduled checkpoint %v taken %.1fs after the last one while a move was in progress (deferral %s)",
			got, time.Since(completed).Seconds(), deferral)
	}
	// The bound: taken although the move is still in progress.
	second := h.newCheckpoints(seen, 10*time.Second)
	if len(second) != 1 {
		t.Fatalf("no scheduled checkpoint within %.1fs of the last one: the deferral is not bounded (%v)", time.Since(completed).Seconds(), second)
	}
	seen[second[0]] = true
	h.agent(true)
	completed = time.Now()

	// The move ends: the next checkpoint comes an interval after the last.
	m.Status.Phase = v1alpha1.MigrationRestored
	if err := h.c.Status().Update(h.ctx, m); err != nil {
		t.Fatal(err)
	}
	third := h.newCheckpoints(seen, interval+deferral-3*time.Second)
	if len(third) != 1 {
		t.Fatalf("no scheduled checkpoint %.1fs after the last one with no move in progress (interval %s): %v",
			time.Since(completed).Seconds(), interval, third)
	}
}

// newCheckpoints watches the namespace's Checkpoints for wait and returns
// the names not in seen as soon as there are any (none after wait).
func (h *harness) newCheckpoints(seen map[string]bool, wait time.Duration) []string {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
			h.t.Fatal(err)
		}
		var out []string
		for _, cp := range l.Items {
			if !seen[cp.Name] {
				out = append(out, cp.Name)
			}
		}
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestScheduledCheckpointsWaitForALostMember: a member lost just now
// (a NoExecute taint, as Karmada's failover or a person adds it) defers due
// scheduled checkpoints of the other members' workloads before any
// Migration exists: Karmada's eviction and scheduling of the lost member's
// workloads come first. The deferral is the same bound as for moves.
func TestScheduledCheckpointsWaitForALostMember(t *testing.T) {
	const interval, deferral = 5 * time.Second, 15 * time.Second
	h := startWith(t, harnessOptions{controllers: []string{"*", "-migrations"}, scheduledDeferral: deferral})
	first := h.protectedOnMember1(interval)
	completed := first.Status.CompletionTime.Time // as in TestScheduledCheckpointsWaitForMoves
	seen := map[string]bool{first.Name: true}

	member2 := &clusterv1alpha1.Cluster{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Name: "member2"}, member2); err != nil {
		t.Fatal(err)
	}
	// The CRD has no mutation: stamp the time as Karmada's API server does.
	lostAt := metav1.Now()
	member2.Spec.Taints = append(member2.Spec.Taints,
		corev1.Taint{Key: "stateshift-test/lost", Effect: corev1.TaintEffectNoExecute, TimeAdded: &lostAt})
	if err := h.c.Update(h.ctx, member2); err != nil {
		t.Fatal(err)
	}

	// Deferred while the loss is recent: until the due time plus the
	// deferral, or the loss plus the deferral, whichever comes first.
	until := completed.Add(interval + deferral)
	if end := lostAt.Add(deferral); end.Before(until) {
		until = end
	}
	if got := h.newCheckpoints(seen, time.Until(until.Add(-2*time.Second))); len(got) > 0 {
		t.Fatalf("scheduled checkpoint %v taken %.1fs after the last one, %.1fs after member2 was lost (deferral %s)",
			got, time.Since(completed).Seconds(), time.Since(lostAt.Time).Seconds(), deferral)
	}
	if second := h.newCheckpoints(seen, 10*time.Second); len(second) != 1 {
		t.Fatalf("no scheduled checkpoint within %.1fs of the last one: the deferral for a lost member is not bounded (%v)",
			time.Since(completed).Seconds(), second)
	}
}
