package podrestore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/testenv"
)

func workloadMeta(ns, name string, annotations map[string]string) metav1.PartialObjectMetadata {
	return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}}
}

func TestCompletedRestores(t *testing.T) {
	done := func(from string) map[string]string {
		return map[string]string{restore.AnnotationRestoredFrom: from, restore.AnnotationRestoreCompleted: from}
	}
	keys, left := CompletedRestores([]metav1.PartialObjectMetadata{
		workloadMeta("shop", "db", done("db-0-ckpt")),
		workloadMeta("shop", "web", map[string]string{restore.AnnotationRestoredFrom: "web-ckpt"}),                                   // pending
		workloadMeta("shop", "old", map[string]string{restore.AnnotationRestoredFrom: "b", restore.AnnotationRestoreCompleted: "a"}), // a later restore pending
		workloadMeta("shop", "quote", done("x') || true || ('")),                                                                     // not a name
		workloadMeta("shop", "plain", nil),                                                                                           // never restored
		workloadMeta("bank", "db", done("db-0-ckpt")),                                                                                // same name, other namespace
		workloadMeta("shop", "db-copy", done("db-0-ckpt")),                                                                           // same key twice
		workloadMeta("Not_A_Namespace", "db", done("db-0-ckpt")),                                                                     // cannot be quoted safely
	})
	if want := []string{"bank/db-0-ckpt", "shop/db-0-ckpt"}; fmt.Sprint(keys) != fmt.Sprint(want) || left != 0 {
		t.Fatalf("CompletedRestores = %v (%d left out), want %v", keys, left, want)
	}
	var many []metav1.PartialObjectMetadata
	for i := 0; i < 5000; i++ {
		many = append(many, workloadMeta("shop", fmt.Sprintf("db%d", i), done(fmt.Sprintf("ckpt-%05d", i))))
	}
	keys, left = CompletedRestores(many)
	if left == 0 || len(keys)+left != 5000 || len(PendingExpression(keys)) > MaxConditionLength || len(CompletedExpression(keys)) > MaxConditionLength {
		t.Fatalf("%d keys listed, %d left out: the conditions are %d and %d long, at most %d", len(keys), left,
			len(PendingExpression(keys)), len(CompletedExpression(keys)), MaxConditionLength)
	}
	if len(PendingExpression(append(keys, "shop/ckpt-99999"))) <= MaxConditionLength {
		t.Fatalf("one more key would have fit: %d listed", len(keys))
	}
}

// TestSecurityCompletedRestoreNeedsNoWebhook (review finding 9): a
// restored workload depends on the pod-restore webhook only until its
// restore completed. Against a real kube-apiserver with the shipped
// webhook configuration and RBAC, the scope controller (as the webhook's
// ServiceAccount) writes the completed restores into the conditions; then,
// with the webhook down, a pod of a completed restore is admitted from the
// template's own image, a pod of a pending restore is refused (it must not
// start without its checkpoint), and a pod in another namespace naming the
// same checkpoint is refused too (a record in one namespace does not
// excuse another's pods). With the configuration as it was shipped before
// (one Fail entry for every restored template), the first pod was refused.
func TestSecurityCompletedRestoreNeedsNoWebhook(t *testing.T) {
	env, saClient := shippedEnv(t)
	ctx := t.Context()
	c := env.Client
	// No webhook server runs: the API server's calls fail to connect.
	shop, bank := env.Namespace(t, "shop"), env.Namespace(t, "bank")
	statefulSet := func(ns, name string, annotations map[string]string) {
		s := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
			Spec: appsv1.StatefulSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: original}}},
				},
			},
		}
		create(t, c, s)
	}
	statefulSet(shop, "db", map[string]string{restore.AnnotationRestoredFrom: "db-0-ckpt", restore.AnnotationRestoreCompleted: "db-0-ckpt"})
	statefulSet(shop, "cache", map[string]string{restore.AnnotationRestoredFrom: "cache-0-ckpt"})

	scope := &ScopeReconciler{Client: saClient, APIReader: saClient, Configuration: "stateshift-pod-restore"}
	if _, err := scope.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Fatalf("scope reconcile as the webhook's ServiceAccount: %v", err)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Name: "stateshift-pod-restore"}, cfg); err != nil {
		t.Fatal(err)
	}
	if SetScope(cfg.DeepCopy(), []string{shop + "/db-0-ckpt"}) {
		t.Fatalf("conditions not written: %+v", cfg.Webhooks)
	}

	// A pod of each, as the StatefulSet controller creates it from a
	// rewritten template: the template's own image, the restore named.
	pod := func(ns, name, from string) *corev1.Pod {
		p := restoredPod(name, map[string]string{restore.AnnotationRestoredFrom: from, restore.AnnotationPodImages: ""})
		p.Namespace = ns
		return p
	}
	dryRun := func(p *corev1.Pod) error { return c.Create(ctx, p, client.DryRunAll) }
	// The API server picks a new webhook configuration up asynchronously.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := dryRun(pod(shop, "db-0", "db-0-ckpt"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a pod of a completed restore, webhook down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p := pod(shop, "db-0", "db-0-ckpt")
	create(t, c, p)
	if p.Spec.Containers[0].Image != original {
		t.Fatalf("completed restore's pod runs %s, want the template's %s", p.Spec.Containers[0].Image, original)
	}
	for _, tc := range []struct{ what, ns, name, from string }{
		{"a pending restore's pod", shop, "cache-0", "cache-0-ckpt"},
		{"another namespace's pod naming the completed checkpoint", bank, "db-0", "db-0-ckpt"},
	} {
		err := c.Create(ctx, pod(tc.ns, tc.name, tc.from))
		if err == nil || !strings.Contains(err.Error(), "pods.restore.stateshift.io") {
			t.Errorf("%s was admitted with the webhook down (err %v): it would start without its checkpoint", tc.what, err)
		}
	}
}

// TestScopeAtItsLimit: the API server accepts the conditions as long as
// CompletedRestores makes them, with the longest names keys can have, and
// evaluates them for a pod (CEL's cost limits); a pod of a restore not
// listed still reaches the Fail entry.
func TestScopeAtItsLimit(t *testing.T) {
	env := testenv.Start(t, testenv.Options{WebhookPaths: []string{filepath.Join(testenv.Root(), "artifacts", "agent", "pod-restore-webhook.yaml")}})
	ctx := t.Context()
	c := env.Client
	ns := env.Namespace(t, "shop")
	var workloads []metav1.PartialObjectMetadata
	for i := 0; i < 1000; i++ {
		// The longest names the keys can have: a 63-character namespace
		// and a 253-character checkpoint.
		from := fmt.Sprintf("%s-%05d", strings.Repeat("c", 247), i)
		workloads = append(workloads, workloadMeta(strings.Repeat("n", 57)+fmt.Sprintf("%06d", i), "db", map[string]string{
			restore.AnnotationRestoredFrom: from, restore.AnnotationRestoreCompleted: from}))
	}
	workloads = append(workloads, workloadMeta(ns, "db", map[string]string{restore.AnnotationRestoredFrom: "db-0-ckpt", restore.AnnotationRestoreCompleted: "db-0-ckpt"}))
	keys, left := CompletedRestores(workloads)
	if left == 0 || len(keys) == 0 {
		t.Fatalf("%d listed, %d left: the test wants the list full", len(keys), left)
	}
	t.Logf("%d restores of the longest names fit the conditions, %d left out", len(keys), left)
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Name: "stateshift-pod-restore"}, cfg); err != nil {
		t.Fatal(err)
	}
	SetScope(cfg, keys)
	if err := c.Update(ctx, cfg); err != nil {
		t.Fatalf("the API server refused %d restores in the conditions: %.300s", len(keys), err)
	}
	// shop/db-0-ckpt sorts after the n... keys: left out, so its pods
	// still need the webhook, which is down.
	time.Sleep(2 * time.Second)
	p := restoredPod("db-0", map[string]string{restore.AnnotationPodImages: ""})
	p.Namespace = ns
	err := c.Create(ctx, p, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "pods.restore.stateshift.io") {
		t.Fatalf("a restore left out of the list was admitted without the webhook: %.300v", err)
	}
	if strings.Contains(err.Error(), "cost") {
		t.Fatalf("the conditions exceed CEL's cost limit: %.300s", err)
	}
}

// TestShippedConditionsAreTheControllersEmptyOnes: the configuration the
// chart renders (artifacts/agent) starts with the conditions the scope
// controller writes for a member without completed restores, on the
// entries with the failure policy each needs: SetScope would otherwise
// rewrite them at once, or find nothing to write.
func TestShippedConditionsAreTheControllersEmptyOnes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "artifacts", "agent", "pod-restore-webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.Unmarshal(raw, cfg); err != nil {
		t.Fatal(err)
	}
	found := map[string]admissionregistrationv1.FailurePolicyType{}
	for _, w := range cfg.Webhooks {
		for _, c := range w.MatchConditions {
			if c.Name == PendingCondition || c.Name == CompletedCondition {
				found[c.Name] = *w.FailurePolicy
			}
		}
	}
	if found[PendingCondition] != admissionregistrationv1.Fail || found[CompletedCondition] != admissionregistrationv1.Ignore {
		t.Fatalf("conditions on entries with failure policies %v; want %s on Fail and %s on Ignore", found, PendingCondition, CompletedCondition)
	}
	if SetScope(cfg, nil) {
		t.Fatalf("the shipped conditions differ from PendingExpression(nil) / CompletedExpression(nil): %+v", cfg.Webhooks)
	}
}
