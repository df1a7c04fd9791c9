package migration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/test/testenv"
)

// TestProxyDelivery: with --checkpoint-delivery=proxy a scheduled
// Checkpoint reaches its member as a copy the controller writes (no
// PropagationPolicy, no binding), the agent's progress on the copy comes
// back to the record as Karmada's reflection would show it (a running
// attempt as its claim, the result with its images), and copies go when
// their record goes or when no record of theirs exists (also in a
// namespace with no record left, found when the member is first seen),
// while a person's Checkpoint on the member (no record) stays. A second
// API server plays the member.
func TestProxyDelivery(t *testing.T) {
	member := testenv.Start(t)
	members, err := migration.NewDirectMemberCheckpoints(map[string]*rest.Config{"member1": member.Config})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, harnessOptions{members: members})
	mc := member.Client
	if err := mc.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}); err != nil {
		t.Fatal(err)
	}
	// Left from a controller that is gone: a copy whose record was deleted
	// meanwhile, in a namespace with no record at all, and a person's
	// Checkpoint beside it. The member's first sight finds the copy.
	leftNS := h.ns + "-left"
	leftCopy := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "gone-0-1", Namespace: leftNS,
		Labels: map[string]string{migration.LabelManagedBy: migration.ManagedBy, migration.LabelRecordUID: "0f0f0f0f-dead-beef-0000-000000000001"}},
		Spec: v1alpha1.CheckpointSpec{PodName: "gone-0", Repository: "127.0.0.1:5000/checkpoints"}}
	leftPersons := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "gone-0-by-hand", Namespace: leftNS}, Spec: leftCopy.Spec}
	for _, o := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leftNS}}, leftCopy, leftPersons} {
		if err := mc.Create(h.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.eventually("the copy left in a namespace without records deleted", 20*time.Second, func() (bool, string) {
		err := mc.Get(h.ctx, client.ObjectKeyFromObject(leftCopy), &v1alpha1.Checkpoint{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if err := mc.Get(h.ctx, client.ObjectKeyFromObject(leftPersons), &v1alpha1.Checkpoint{}); err != nil {
		t.Fatalf("a person's Checkpoint beside the left copy: %v", err)
	}
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval = metav1.Duration{Duration: time.Hour} })

	rec := &v1alpha1.Checkpoint{}
	h.eventually("the scheduled Checkpoint in the Karmada API", 20*time.Second, func() (bool, string) {
		names := h.checkpointsOn("member1", 0)
		if len(names) != 1 {
			return false, fmt.Sprint(names)
		}
		return h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: names[0]}, rec) == nil, names[0]
	})
	if rec.Labels[migration.LabelDelivery] != migration.DeliveryProxy {
		t.Fatalf("record labels %v: want %s=%s", rec.Labels, migration.LabelDelivery, migration.DeliveryProxy)
	}
	copyOf := func() (*v1alpha1.Checkpoint, error) {
		cp := &v1alpha1.Checkpoint{}
		return cp, mc.Get(h.ctx, client.ObjectKeyFromObject(rec), cp)
	}
	var cp *v1alpha1.Checkpoint
	h.eventually("the member's copy", 20*time.Second, func() (bool, string) {
		cp, err = copyOf()
		return err == nil, fmt.Sprint(err)
	})
	if cp.Labels[migration.LabelRecordUID] != string(rec.UID) || !equality.Semantic.DeepEqual(cp.Spec, rec.Spec) ||
		cp.Labels[migration.LabelPod] != "db-0" || len(cp.OwnerReferences)+len(cp.Finalizers) != 0 {
		t.Fatalf("copy %+v\nof record %+v", cp.ObjectMeta, rec.ObjectMeta)
	}
	var pps policyv1alpha1.PropagationPolicyList
	if err := h.c.List(h.ctx, &pps, client.InNamespace(h.ns)); err != nil || len(pps.Items) != 0 {
		t.Fatalf("PropagationPolicies %d (%v): want none with proxy delivery", len(pps.Items), err)
	}

	// The agent waits (the record shows why), then claims the copy and
	// pushes: the record shows the claim instead of the wait. (A claim
	// over no status is not written: the result follows it.)
	setCopyStatus := func(s v1alpha1.CheckpointStatus) {
		t.Helper()
		cp.Status = s
		if err := mc.Status().Update(h.ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	recordShows := func(what string, ok func(v1alpha1.CheckpointStatus) bool) {
		t.Helper()
		h.eventually(what, 20*time.Second, func() (bool, string) {
			_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(rec), rec)
			return ok(rec.Status), fmt.Sprintf("%+v", rec.Status)
		})
	}
	setCopyStatus(v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointPending, Message: "waiting for pod db-0 to run on this node"})
	recordShows("the wait on the record", func(s v1alpha1.CheckpointStatus) bool {
		return s.Phase == v1alpha1.CheckpointPending && s.Message == "cluster member1: waiting for pod db-0 to run on this node"
	})
	now := metav1.Now()
	setCopyStatus(v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointPushing, NodeName: "node-a", Attempts: 1, StartTime: &now, LastAttemptTime: &now})
	recordShows("the claim on the record", func(s v1alpha1.CheckpointStatus) bool {
		return s.Phase == v1alpha1.CheckpointCheckpointing && s.NodeName == "node-a" &&
			strings.HasPrefix(s.Message, "cluster member1, node node-a: attempt 1")
	})
	// Its result, with the image, is the record's.
	done := cp.Status.DeepCopy()
	done.Phase, done.CompletionTime = v1alpha1.CheckpointSucceeded, &now
	done.Containers = []v1alpha1.ContainerCheckpoint{{Name: "app", Image: h.pushCheckpointImage(cp), ArchiveBytes: 1}}
	setCopyStatus(*done)
	recordShows("the result on the record", func(s v1alpha1.CheckpointStatus) bool {
		return s.Phase == v1alpha1.CheckpointSucceeded && equality.Semantic.DeepEqual(s.Containers, done.Containers) &&
			s.Message == "cluster member1, node node-a"
	})

	// A copy whose record does not exist goes; a person's Checkpoint on
	// the member (no record UID) stays.
	orphan := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "db-0-orphan", Namespace: h.ns,
		Labels: map[string]string{migration.LabelManagedBy: migration.ManagedBy, migration.LabelRecordUID: "0f0f0f0f-dead-beef-0000-000000000000"}},
		Spec: cp.Spec}
	persons := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "db-0-by-hand", Namespace: h.ns}, Spec: cp.Spec}
	for _, o := range []client.Object{orphan, persons} {
		if err := mc.Create(h.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(o client.Object) func() (bool, string) {
		return func() (bool, string) {
			err := mc.Get(h.ctx, client.ObjectKeyFromObject(o), &v1alpha1.Checkpoint{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		}
	}
	h.eventually("the orphaned copy deleted", 20*time.Second, gone(orphan))

	// The record goes (its images first): its copy goes too.
	if err := h.c.Delete(h.ctx, rec); err != nil {
		t.Fatal(err)
	}
	// (The controller takes a new checkpoint at once, of the same name:
	// the copy of the deleted record is the one to go.)
	h.eventually("the record's copy replaced by the new record's", 30*time.Second, func() (bool, string) {
		now := &v1alpha1.Checkpoint{}
		err := mc.Get(h.ctx, client.ObjectKeyFromObject(cp), now)
		return err == nil && now.UID != cp.UID, fmt.Sprint(err)
	})
	if err := mc.Get(h.ctx, client.ObjectKeyFromObject(persons), &v1alpha1.Checkpoint{}); err != nil {
		t.Fatalf("a person's Checkpoint on the member: %v", err)
	}
	// A stale copy in a member Karmada reports lost stays (no live read, no
	// proxied delete that cannot succeed) until the member is Ready again.
	setReady := func(status metav1.ConditionStatus) {
		t.Helper()
		cl := &clusterv1alpha1.Cluster{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Name: "member1"}, cl); err != nil {
			t.Fatal(err)
		}
		meta.SetStatusCondition(&cl.Status.Conditions, metav1.Condition{Type: clusterv1alpha1.ClusterConditionReady, Status: status, Reason: "Test", Message: "test"})
		if err := h.c.Status().Update(h.ctx, cl); err != nil {
			t.Fatal(err)
		}
	}
	setReady(metav1.ConditionFalse)
	time.Sleep(time.Second) // the controller's cache sees the loss
	whileLost := orphan.DeepCopy()
	whileLost.ObjectMeta = metav1.ObjectMeta{Name: "db-0-while-lost", Namespace: h.ns, Labels: orphan.Labels}
	if err := mc.Create(h.ctx, whileLost); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := mc.Get(h.ctx, client.ObjectKeyFromObject(whileLost), &v1alpha1.Checkpoint{}); err != nil {
		t.Fatalf("a stale copy in a lost member: %v, want it left until the member is back", err)
	}
	setReady(metav1.ConditionTrue)
	h.eventually("the stale copy deleted once the member is Ready", 45*time.Second, gone(whileLost))

	// The writes are counted (the series are the process's, so at least).
	for op, least := range map[string]float64{"create": 2, "delete": 3, "status": 3} {
		series := seriesOf(t, "stateshift_controller_checkpoint_deliveries_total", map[string]string{"operation": op, "result": "ok"})
		if len(series) != 1 || series[0].GetCounter().GetValue() < least {
			t.Errorf("stateshift_controller_checkpoint_deliveries_total{operation=%q,result=\"ok\"}: %v, want >= %v", op, series, least)
		}
	}
}
