package migration

import (
	"context"
	"strings"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// TestArmSkipsOnlyWhatNothingChanged: arm remembers the inputs that left a
// restore OverridePolicy as it is, and skips building and comparing the
// policy while neither the inputs nor the policy changed. Anything else
// must still be written: a person's edit of the policy, another plan, new
// exclusions, a new template version.
func TestArmSkipsOnlyWhatNothingChanged(t *testing.T) {
	ctx := context.Background()
	writes := 0
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		// The fake API server gives objects no UID; a real one does, and
		// the memo keys on it.
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			obj.SetUID(uuid.NewUUID())
			writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	ctrl := &Controller{Client: c, Reader: c}
	owner, w := armFixture(t)
	armed := func() *policyv1alpha1.OverridePolicy {
		t.Helper()
		op := &policyv1alpha1.OverridePolicy{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: restore.PolicyNameFor("StatefulSet", "db")}, op); err != nil {
			t.Fatal(err)
		}
		return op
	}
	step := func(what string, plan *restore.Plan, exclude []string, wantWrites int) *policyv1alpha1.OverridePolicy {
		t.Helper()
		writes = 0
		if err := ctrl.arm(ctx, owner, w, plan, exclude, nil); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if writes != wantWrites {
			t.Fatalf("%s: %d writes, want %d", what, writes, wantWrites)
		}
		op := armed()
		if !plansArmed.unchanged(op, armInputs(owner, w, plan, exclude, nil)) {
			t.Fatalf("%s: the armed policy is not remembered as what these inputs arm", what)
		}
		if got := op.Annotations[restore.AnnotationRestoredFrom]; got != plan.Checkpoint {
			t.Fatalf("%s: armed %q, want %q", what, got, plan.Checkpoint)
		}
		return op
	}

	planA := planOf("db-0-member1-1", "a")
	first := step("first arm", planA, []string{"member1"}, 1)
	step("same inputs", planA, []string{"member1"}, 0)

	// A person (or a restore of the Karmada API) rewrites the policy: its
	// resourceVersion changes, so the next arm compares and repairs it.
	edited := first.DeepCopy()
	edited.Spec.OverrideRules = nil
	if err := c.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	if plansArmed.unchanged(armed(), armInputs(owner, w, planA, []string{"member1"}, nil)) {
		t.Fatal("an edited policy is remembered as armed")
	}
	repaired := step("after an edit", planA, []string{"member1"}, 1)
	if len(repaired.Spec.OverrideRules) == 0 {
		t.Fatal("the edited policy was not repaired")
	}

	step("a newer checkpoint", planOf("db-0-member1-2", "b"), []string{"member1"}, 1)
	op := step("another exclusion", planOf("db-0-member1-2", "b"), []string{"member1", "member3"}, 1)
	if got := op.Spec.OverrideRules[0].TargetCluster.ExcludeClusters; len(got) != 2 {
		t.Fatalf("exclusions %v, want two", got)
	}

	// A new template version (an image changed) is built again; the
	// policy's overriders name containers of the template.
	w.obj.SetResourceVersion("8")
	if plansArmed.unchanged(armed(), armInputs(owner, w, planOf("db-0-member1-2", "b"), []string{"member1", "member3"}, nil)) {
		t.Fatal("a new template version is remembered as armed")
	}

	// Without a template version (not read from an API server) nothing is
	// remembered.
	w.obj.SetResourceVersion("")
	if in := armInputs(owner, w, planA, []string{"member1"}, nil); in != "" {
		t.Fatalf("inputs %q for a template without a version", in)
	}
}

// TestArmDoesNotCreateTwiceWhileTheCacheLags: a second arm before the
// cache shows the policy the first one created goes on from what was
// created (no second POST refused AlreadyExists, no live read); a changed
// plan still updates it; past recentCreateTTL the cache is believed again.
func TestArmDoesNotCreateTwiceWhileTheCacheLags(t *testing.T) {
	ctx := context.Background()
	var creates, updates, liveReads int
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			obj.SetUID(uuid.NewUUID())
			creates++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			updates++
			return c.Update(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*policyv1alpha1.OverridePolicy); ok {
				liveReads++
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	// The cache has never seen an OverridePolicy.
	cache := fake.NewClientBuilder().WithScheme(testScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, _ client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return api.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, _ client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return api.Update(ctx, obj, opts...)
		},
	}).Build()
	now := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	ctrl := &Controller{Client: cache, Reader: api, Now: func() time.Time { return now }}
	owner, w := armFixture(t)
	arm := func(what string, plan *restore.Plan, wantCreates, wantUpdates int) {
		t.Helper()
		creates, updates, liveReads = 0, 0, 0
		if err := ctrl.arm(ctx, owner, w, plan, []string{"member1"}, nil); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if creates != wantCreates || updates != wantUpdates || liveReads != 0 {
			t.Fatalf("%s: %d creates, %d updates, %d live reads of the policy; want %d, %d, 0", what, creates, updates, liveReads, wantCreates, wantUpdates)
		}
	}
	arm("first arm", planOf("ckpt-1", "a"), 1, 0)
	arm("the same plan again, the cache still empty", planOf("ckpt-1", "a"), 0, 0)
	arm("a newer plan, the cache still empty", planOf("ckpt-2", "b"), 0, 1)
	now = now.Add(recentCreateTTL + time.Second)
	creates, liveReads = 0, 0
	err := ctrl.arm(ctx, owner, w, planOf("ckpt-2", "b"), []string{"member1"}, nil)
	if creates != 1 || liveReads != 1 || err != nil {
		t.Fatalf("past the TTL: %d creates (refused AlreadyExists), %d live reads, err %v; want the old path: 1, 1, nil", creates, liveReads, err)
	}
}

// armFixture is a policy and the StatefulSet workload it protects, as the
// arm tests use them.
func armFixture(t *testing.T) (*v1alpha1.CheckpointPolicy, *workload) {
	t.Helper()
	owner := &v1alpha1.CheckpointPolicy{ObjectMeta: metav1.ObjectMeta{Name: "protect", Namespace: "shop", UID: uuid.NewUUID()}}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", UID: uuid.NewUUID(), ResourceVersion: "7"},
		Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		}}},
	}
	w, err := newWorkload(sts, "StatefulSet", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	return owner, w
}

// planOf is a plan restoring checkpoint with one image whose digest
// repeats hex.
func planOf(checkpoint, hex string) *restore.Plan {
	return &restore.Plan{Checkpoint: checkpoint, Containers: map[string]string{
		"app": "registry.example/ckpt@sha256:" + strings.Repeat(hex, 64)}}
}
