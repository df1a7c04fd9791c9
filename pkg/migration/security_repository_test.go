package migration_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/test/registry"
	"github.com/stateshift/stateshift/test/testenv"
)

// TestSecurityRepositoryAllowlist applies artifacts/security/checkpoint-
// repositories.yaml to a real API server: a CheckpointPolicy or Checkpoint
// may name only a repository its namespace's annotation allows, a
// namespace without the annotation none, and the message says what to do.
func TestSecurityRepositoryAllowlist(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	applyYAML(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "security", "checkpoint-repositories.yaml"))
	shop := annotatedNamespace(t, env.Client, "shop", " registry.example.com/shop/ , registry.example.com/common")
	bare := env.Namespace(t, "bare")

	refused := func(what string, o client.Object, want ...string) {
		t.Helper()
		err := env.Client.Create(ctx, o)
		if err == nil {
			t.Fatalf("%s: created", what)
		}
		for _, w := range append(want, "stateshift-checkpoint-repositories") {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: error %q lacks %q", what, err, w)
			}
		}
	}
	// A ValidatingAdmissionPolicy takes effect a moment after it is created.
	deadline := time.Now().Add(30 * time.Second)
	for env.Client.Create(ctx, repoPolicy(shop, "p0", "registry.example.com/elsewhere/db")) == nil {
		_ = env.Client.Delete(ctx, repoPolicy(shop, "p0", ""))
		if time.Now().After(deadline) {
			t.Fatal("the policy never took effect")
		}
		time.Sleep(200 * time.Millisecond)
	}
	refused("another tenant's repository", repoPolicy(shop, "p1", "registry.example.com/other/db"),
		"repository registry.example.com/other/db is not allowed for namespace shop", "registry.example.com/shop/")
	refused("a sibling that shares a prefix", repoPolicy(shop, "p2", "registry.example.com/shopping/db"), "not allowed")
	refused("a Checkpoint too", repoCheckpoint(shop, "c1", "registry.example.com/other/db"), "not allowed for namespace shop")
	refused("a namespace without allowlist", repoPolicy(bare, "p3", "registry.example.com/shop/db"),
		"namespace bare may send checkpoints (memory dumps) to no repository", "stateshift.io/allowed-repositories")

	for i, repo := range []string{"registry.example.com/shop", "registry.example.com/shop/db", "registry.example.com/common/x/y"} {
		if err := env.Client.Create(ctx, repoPolicy(shop, fmt.Sprintf("ok%d", i), repo)); err != nil {
			t.Fatalf("allowed repository %s refused: %v", repo, err)
		}
	}
	cp := repoCheckpoint(shop, "c2", "registry.example.com/shop/db")
	if err := env.Client.Create(ctx, cp); err != nil {
		t.Fatalf("allowed Checkpoint refused: %v", err)
	}
	cp.Spec.Repository = "registry.example.com/other/db"
	if err := env.Client.Update(ctx, cp); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("moving a Checkpoint to another repository: %v", err)
	}
	// Shrinking the allowlist never blocks what does not change the
	// repository (a finalizer's removal, labels).
	annotate(t, env.Client, shop, "registry.example.com/common")
	must(t, env.Client.Get(ctx, client.ObjectKeyFromObject(cp), cp))
	cp.Labels = map[string]string{"x": "y"}
	if err := env.Client.Update(ctx, cp); err != nil {
		t.Fatalf("a metadata update after the allowlist shrank: %v", err)
	}
}

// TestSecurityControllerRefusesRepositoryNotAllowed: without the admission
// policy, the controller itself takes no checkpoint for a policy whose
// repository the namespace does not allow, says so in the policy's Ready
// condition, and starts once an administrator allows it.
func TestSecurityControllerRefusesRepositoryNotAllowed(t *testing.T) {
	h := start(t)
	annotate(t, h.c, h.ns, "registry.example.com/someone-else")
	h.statefulSet("member1")
	h.policy(nil)
	h.eventually("the policy refused", 20*time.Second, func() (bool, string) {
		p := &v1alpha1.CheckpointPolicy{}
		must(t, h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p))
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "RepositoryNotAllowed: repository "+h.reg.Host+"/ckpt/db is not allowed for namespace "+h.ns), fmt.Sprint(c)
	})
	var l v1alpha1.CheckpointList
	must(t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
	if len(l.Items) != 0 {
		t.Fatalf("checkpoints were created for a repository the namespace may not use: %d", len(l.Items))
	}
	annotate(t, h.c, h.ns, h.reg.Host+"/ckpt")
	h.eventually("a checkpoint once allowed", 20*time.Second, func() (bool, string) {
		must(t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
		return len(l.Items) > 0, ""
	})
}

// TestSecurityPropagationForwardsOnlyOwnCheckpoints: the controller's
// PropagationPolicy (also one an earlier version made) forwards the
// Checkpoints the controller made, never one someone else created in the
// Karmada API with the cluster label.
func TestSecurityPropagationForwardsOnlyOwnCheckpoints(t *testing.T) {
	h := start(t)
	old := &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "stateshift-checkpoints-member1", Namespace: h.ns},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.CheckpointKind,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{migration.LabelCluster: "member1"}}}},
			Placement: policyv1alpha1.Placement{ClusterTolerations: []corev1.Toleration{{Key: "x", Operator: corev1.TolerationOpExists}}},
		},
	}
	h.create(old)
	tenant := repoCheckpoint(h.ns, "tenant-dump", "registry.example.com/ckpt/db")
	tenant.Labels = map[string]string{migration.LabelCluster: "member1"}
	h.create(tenant)
	h.statefulSet("member1")
	h.policy(nil)
	var own []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		for _, n := range h.agent(true) { // the fake agent completes the tenant's too
			if n != tenant.Name {
				own = append(own, n)
			}
		}
		return len(own) > 0, ""
	})
	h.eventually("the PropagationPolicy selects only the controller's", 10*time.Second, func() (bool, string) {
		pp := &policyv1alpha1.PropagationPolicy{}
		must(t, h.c.Get(h.ctx, client.ObjectKeyFromObject(old), pp))
		sel, err := metav1.LabelSelectorAsSelector(pp.Spec.ResourceSelectors[0].LabelSelector)
		must(t, err)
		cp := &v1alpha1.Checkpoint{}
		must(t, h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: own[0]}, cp))
		return sel.Matches(labels.Set(cp.Labels)) && !sel.Matches(labels.Set(tenant.Labels)), sel.String()
	})
}

func repoPolicy(ns, name, repo string) *v1alpha1.CheckpointPolicy {
	return &v1alpha1.CheckpointPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.CheckpointPolicySpec{
			ResourceSelectors: []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}},
			Repository:        repo,
			Schedule:          v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: time.Minute}},
		},
	}
}

func repoCheckpoint(ns, name, repo string) *v1alpha1.Checkpoint {
	return &v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.CheckpointSpec{PodName: "db-0", Repository: repo},
	}
}

func annotatedNamespace(t *testing.T, c client.Client, name, allowed string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{migration.AnnotationAllowedRepositories: allowed}}}
	must(t, c.Create(t.Context(), ns))
	return name
}

// annotate sets the namespace's allowlist as an administrator would.
func annotate(t *testing.T, c client.Client, name, allowed string) {
	t.Helper()
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns := &corev1.Namespace{}
		if err := c.Get(t.Context(), client.ObjectKey{Name: name}, ns); err != nil {
			return err
		}
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		ns.Annotations[migration.AnnotationAllowedRepositories] = allowed
		return c.Update(t.Context(), ns)
	}))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecurityControllerHonoursSecretNamespaces: a registry Secret bound to
// other namespaces (stateshift.io/allowed-namespaces) is not used by the
// controller for a policy of this namespace (reading manifests, deleting
// images): a tenant naming another tenant's Secret gets a refusal, not
// that tenant's robot account.
func TestSecurityControllerHonoursSecretNamespaces(t *testing.T) {
	h := startWith(t, harnessOptions{registry: []registry.Option{registry.WithAuth("tenant-b", "b-only")}})
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "stateshift-system"}})
	secret := h.registrySecret("stateshift-system", "tenant-b-creds")
	secret.Annotations = map[string]string{"stateshift.io/allowed-namespaces": "tenant-b"}
	h.create(secret)
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "tenant-b-creds"}
	})
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		return len(h.agent(true)) > 0, ""
	})
	h.eventSaying("CredentialsUnavailable", "registry credentials stateshift-system/tenant-b-creds",
		"may not be used by namespace "+h.ns)
}
