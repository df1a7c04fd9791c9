package migration

import (
	"fmt"
	"testing"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func TestCheckpointSettledPassesOnlyTheEnd(t *testing.T) {
	cp := func(phase v1alpha1.CheckpointPhase) *v1alpha1.Checkpoint {
		c := &v1alpha1.Checkpoint{}
		c.Status.Phase = phase
		return c
	}
	for _, tc := range []struct {
		from, to v1alpha1.CheckpointPhase
		want     bool
	}{
		{v1alpha1.CheckpointPending, v1alpha1.CheckpointCheckpointing, false},
		{v1alpha1.CheckpointCheckpointing, v1alpha1.CheckpointPushing, false},
		{v1alpha1.CheckpointPushing, v1alpha1.CheckpointSucceeded, true},
		{v1alpha1.CheckpointPushing, v1alpha1.CheckpointFailed, true},
		{v1alpha1.CheckpointSucceeded, v1alpha1.CheckpointSucceeded, false}, // Karmada's status sync
	} {
		if got := checkpointSettled.Update(event.UpdateEvent{ObjectOld: cp(tc.from), ObjectNew: cp(tc.to)}); got != tc.want {
			t.Errorf("%s -> %s: passed %t, want %t", tc.from, tc.to, got, tc.want)
		}
	}
	if !checkpointSettled.Delete(event.DeleteEvent{Object: cp(v1alpha1.CheckpointPending)}) {
		t.Error("a deleted Checkpoint must pass")
	}
	if checkpointSettled.Create(event.CreateEvent{Object: cp("")}) || !checkpointSettled.Create(event.CreateEvent{Object: cp(v1alpha1.CheckpointSucceeded)}) {
		t.Error("create: only a settled Checkpoint (seen at start) passes")
	}
}

func TestBindingChangedIgnoresStatusNoise(t *testing.T) {
	rb := func(gen int64, health workv1alpha2.ResourceHealth, reflected string) *workv1alpha2.ResourceBinding {
		b := &workv1alpha2.ResourceBinding{}
		b.Generation = gen
		b.Status.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{
			ClusterName: "member1", Applied: true, Health: health,
			Status: &runtime.RawExtension{Raw: []byte(reflected)},
		}}
		return b
	}
	base := rb(1, workv1alpha2.ResourceHealthy, `{"readyReplicas":1,"stateshift":{"restoredFrom":"a"}}`)
	for name, tc := range map[string]struct {
		next *workv1alpha2.ResourceBinding
		want bool
	}{
		"replica counts only":     {rb(1, workv1alpha2.ResourceHealthy, `{"readyReplicas":0,"stateshift":{"restoredFrom":"a"}}`), false},
		"placement":               {rb(2, workv1alpha2.ResourceHealthy, `{"readyReplicas":1,"stateshift":{"restoredFrom":"a"}}`), true},
		"health":                  {rb(1, workv1alpha2.ResourceUnhealthy, `{"readyReplicas":1,"stateshift":{"restoredFrom":"a"}}`), true},
		"reflected restore":       {rb(1, workv1alpha2.ResourceHealthy, `{"readyReplicas":1,"stateshift":{"restoredFrom":"b"}}`), true},
		"status not ours to read": {rb(1, workv1alpha2.ResourceHealthy, `not json`), true},
	} {
		if got := bindingChanged.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: tc.next}); got != tc.want {
			t.Errorf("%s: passed %t, want %t", name, got, tc.want)
		}
	}
}

func TestTemplateChangedIgnoresStatus(t *testing.T) {
	old := &appsv1.StatefulSet{}
	old.Generation = 3
	status := old.DeepCopy()
	status.Status.ReadyReplicas = 1
	if templateChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: status}) {
		t.Error("a status update must not pass")
	}
	spec := old.DeepCopy()
	spec.Generation = 4
	if !templateChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: spec}) {
		t.Error("a new generation must pass")
	}
	relabelled := old.DeepCopy()
	relabelled.Labels = map[string]string{"tier": "db"}
	if !templateChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: relabelled}) {
		t.Error("new labels (a selection) must pass")
	}
}

// A policy's Checkpoint events reach its queue after the batching delay,
// once however many arrive meanwhile.
func TestBatchedEventsReachTheQueueOnce(t *testing.T) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := batched(handler.EnqueueRequestsFromMapFunc(policyOfCheckpoint), 200*time.Millisecond)
	for i := range 50 {
		cp := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("db-0-%d", i), Labels: map[string]string{LabelPolicy: "db"}}}
		h.Update(t.Context(), event.UpdateEvent{ObjectOld: cp, ObjectNew: cp}, q)
	}
	if q.Len() != 0 {
		t.Fatalf("%d requests queued at once, want them delayed", q.Len())
	}
	time.Sleep(400 * time.Millisecond)
	if q.Len() != 1 {
		t.Fatalf("%d requests after the delay, want 1", q.Len())
	}
	if r, _ := q.Get(); r.Name != "db" || r.Namespace != "shop" {
		t.Fatalf("queued %v", r)
	}
}
