package migration_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestFinishedMigrationsBeyondHistoryDeleted: the move detector keeps a
// workload's finished Migrations to its policy's retention.migrations
// (newest first, the newest Restored one besides) and deletes the rest,
// as the controller's ServiceAccount with the shipped RBAC; unfinished
// ones and other workloads' stay. The finished Migrations of a workload
// whose template was deleted go too; its unfinished ones stay. Only move
// detection runs, so the Migrations stay in the phases the test gives
// them.
func TestFinishedMigrationsBeyondHistoryDeleted(t *testing.T) {
	h := startWith(t, harnessOptions{shippedRBAC: true, controllers: []string{"movedetection"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	// A template the policy does not select: its history is not the
	// policy's to trim, and it exists, so it is kept whole.
	h.create(&appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: h.ns},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/other:1"}}},
			},
		},
	})

	ended := time.Now().Add(-time.Hour).Truncate(time.Second)
	migration := func(name, workload string, phase v1alpha1.MigrationPhase, endedMin int) {
		m := &v1alpha1.Migration{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
			Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: workload},
				DestinationCluster: "member1", Trigger: v1alpha1.TriggerManual},
		}
		h.create(m)
		m.Status.Phase = phase
		if endedMin >= 0 {
			m.Status.CompletionTime = &metav1.Time{Time: ended.Add(time.Duration(endedMin) * time.Minute)}
		}
		if err := h.c.Status().Update(h.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	migration("restored-1", "db", v1alpha1.MigrationRestored, 1)
	migration("restored-2", "db", v1alpha1.MigrationRestored, 2)
	migration("fellback-3", "db", v1alpha1.MigrationFellBack, 3)
	migration("failed-4", "db", v1alpha1.MigrationFailed, 4)
	migration("failed-5", "db", v1alpha1.MigrationFailed, 5)
	migration("running", "db", v1alpha1.MigrationRestoring, -1)
	migration("other-1", "other", v1alpha1.MigrationFailed, 1)
	migration("other-2", "other", v1alpha1.MigrationFailed, 2)
	migration("other-3", "other", v1alpha1.MigrationFailed, 3)
	migration("gone-restored", "gone", v1alpha1.MigrationRestored, 1)
	migration("gone-failed", "gone", v1alpha1.MigrationFailed, 2)
	migration("gone-pending", "gone", v1alpha1.MigrationPending, -1)

	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Retention.Migrations = 2 })
	// Kept: the two newest finished (failed-5, failed-4), the newest
	// Restored (restored-2), the running one, the Migrations of a
	// workload the policy does not select, and the unfinished one of the
	// deleted workload.
	want := "failed-4,failed-5,gone-pending,other-1,other-2,other-3,restored-2,running"
	h.eventually("history trimmed to retention.migrations", 30*time.Second, func() (bool, string) {
		var names []string
		for _, m := range h.migrations() {
			if m.DeletionTimestamp == nil {
				names = append(names, m.Name)
			}
		}
		sort.Strings(names)
		return strings.Join(names, ",") == want, fmt.Sprint(names)
	})
	// And it stays so: nothing kept is deleted on later rounds.
	time.Sleep(6 * time.Second)
	var names []string
	for _, m := range h.migrations() {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("after more rounds: %s, want %s", got, want)
	}
}
