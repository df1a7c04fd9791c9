package migration_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/test/registry"
)

// TestRegistrySecretWithShippedRBAC runs the controller as its
// ServiceAccount with artifacts/controller/rbac.yaml only (get on Secrets
// in stateshift-system: no list, no watch) against a registry that wants
// credentials. Retention reads the policy's Secret and deletes the pruned
// image with it. Read through the cached client, the Secret Get started a
// cluster-wide Secret informer this RBAC forbids and blocked for ever, and
// with it every round of the policy.
func TestRegistrySecretWithShippedRBAC(t *testing.T) {
	h := startWith(t, harnessOptions{shippedRBAC: true, registry: []registry.Option{registry.WithAuth("pruner", "s3cret-prune")}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(h.registrySecret("stateshift-system", "registry-creds"))
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "registry-creds"}
	})

	var first, second []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		first = h.agent(true)
		return len(first) == 1, fmt.Sprint(first)
	})
	cp := &v1alpha1.Checkpoint{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, cp); err != nil {
		t.Fatal(err)
	}
	h.eventually("the next scheduled checkpoint", 20*time.Second, func() (bool, string) {
		second = h.agent(true)
		return len(second) == 1, ""
	})
	h.eventually("the old checkpoint pruned", 20*time.Second, func() (bool, string) {
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, &v1alpha1.Checkpoint{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	ref, _ := name.NewDigest(cp.Status.Containers[0].Image)
	if _, err := remote.Head(ref, remote.WithAuth(h.auth)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("the pruned image is still served (deleted without credentials?): %v", err)
	}
	h.noWarnings("CredentialsUnavailable", "ImageDeleteFailed")
}

// registrySecret is a dockerconfigjson Secret with the test registry's
// credentials.
func (h *harness) registrySecret(ns, name string) *corev1.Secret {
	h.t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(h.reg.Username + ":" + h.reg.Password))
	raw, err := json.Marshal(map[string]any{"auths": map[string]any{h.reg.Host: map[string]string{
		"username": h.reg.Username, "password": h.reg.Password, "auth": auth,
	}}})
	if err != nil {
		h.t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: raw},
	}
}

// noWarnings fails the test when the test namespace has a Warning Event
// with one of reasons.
func (h *harness) noWarnings(reasons ...string) {
	h.t.Helper()
	var events corev1.EventList
	if err := h.c.List(h.ctx, &events, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	for _, e := range events.Items {
		for _, r := range reasons {
			if e.Type == corev1.EventTypeWarning && e.Reason == r {
				h.t.Errorf("Warning %s on %s %s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
			}
		}
	}
}

// stuckOnce is a pod lister whose first call hangs until its context ends
// (a member or the Karmada proxy that does not answer).
type stuckOnce struct {
	migration.PodLister
	stuck atomic.Bool
}

func (s *stuckOnce) Pods(ctx context.Context, cluster, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
	if s.stuck.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.PodLister.Pods(ctx, cluster, namespace, selector)
}

// TestReconcileTimeout: a Reconcile that hangs (here on a member that does
// not answer) ends at the reconcile timeout and is retried. Without a
// deadline it held the policy controller's only worker for ever: no
// checkpoint of any policy was taken again.
func TestReconcileTimeout(t *testing.T) {
	stuck := &stuckOnce{}
	h := startWith(t, harnessOptions{
		reconcileTimeout: 2 * time.Second,
		pods:             func(l migration.PodLister) migration.PodLister { stuck.PodLister = l; return stuck },
	})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.eventually("a checkpoint after the hung round", 20*time.Second, func() (bool, string) {
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
			t.Fatal(err)
		}
		return stuck.stuck.Load() && len(l.Items) == 1, fmt.Sprintf("hung=%v checkpoints=%d", stuck.stuck.Load(), len(l.Items))
	})
}
