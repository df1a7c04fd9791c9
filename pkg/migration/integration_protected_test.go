package migration_test

import (
	"fmt"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// gauge reads one series of the controller's registry; ok false when it
// is not exported.
func gauge(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	if series := seriesOf(t, name, want); len(series) > 0 {
		return series[0].GetGauge().GetValue(), true
	}
	return 0, false
}

func (h *harness) protected() (v1alpha1.CheckpointPolicyStatus, *metav1.Condition) {
	p := &v1alpha1.CheckpointPolicy{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
		h.t.Fatal(err)
	}
	if len(p.Status.Workloads) != 1 {
		return p.Status, nil
	}
	return p.Status, meta.FindStatusCondition(p.Status.Workloads[0].Conditions, v1alpha1.ConditionProtected)
}

// TestProtectedConditionAndCheckpointAge follows one workload's data-loss
// window: Failing while its checkpoints fail, Protected once one is
// verified and armed, an age metric that grows between rounds, and Stale
// when no checkpoint succeeds for StaleIntervals intervals.
func TestProtectedConditionAndCheckpointAge(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	h.policy(nil)
	labels := map[string]string{"namespace": h.ns, "policy": "protect", "workload": "db"}

	h.eventually("Failing after a failed checkpoint", 20*time.Second, func() (bool, string) {
		h.agent(false)
		_, c := h.protected()
		v, ok := gauge(t, "stateshift_workload_protected", map[string]string{"namespace": h.ns, "reason": "Failing"})
		return c != nil && c.Reason == v1alpha1.ProtectedReasonFailing && ok && v == 0, fmt.Sprintf("%+v", c)
	})
	h.eventually("Protected once a checkpoint is verified and armed", 30*time.Second, func() (bool, string) {
		h.agent(true)
		s, c := h.protected()
		v, ok := gauge(t, "stateshift_workload_protected", map[string]string{"namespace": h.ns, "reason": "Protected"})
		return c != nil && c.Status == metav1.ConditionTrue && ok && v == 1 && s.UnprotectedWorkloads == 0 && s.OldestCheckpointTime != nil,
			fmt.Sprintf("%+v unprotected=%d", c, s.UnprotectedWorkloads)
	})
	// No agent from here on: the age grows at scrape time, without a round.
	first, ok := gauge(t, "stateshift_checkpoint_age_seconds", labels)
	if !ok {
		t.Fatal("no stateshift_checkpoint_age_seconds for db")
	}
	time.Sleep(2 * time.Second)
	if second, _ := gauge(t, "stateshift_checkpoint_age_seconds", labels); second < first+1.5 {
		t.Fatalf("checkpoint age %v then %v 2s later: it does not grow between rounds", first, second)
	}
	if v, ok := gauge(t, "stateshift_checkpoint_interval_seconds", map[string]string{"namespace": h.ns}); !ok || v != 5 {
		t.Fatalf("interval gauge %v %v, want 5", v, ok)
	}
	h.eventually("Stale after three intervals without a verified checkpoint", 30*time.Second, func() (bool, string) {
		s, c := h.protected()
		return c != nil && c.Reason == v1alpha1.ProtectedReasonStale && s.UnprotectedWorkloads == 1, fmt.Sprintf("%+v", c)
	})
	if age, _ := gauge(t, "stateshift_checkpoint_age_seconds", labels); age < 15 {
		t.Fatalf("stale, but the age metric says %vs", age)
	}
}
