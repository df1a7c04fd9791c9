package migration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/registry"
)

// TestPullSecretArmedAndPropagated: a policy with a pull-only Secret arms
// plans that add it to the restored pod template's imagePullSecrets, and
// the controller propagates the Secret to every cluster the workload's
// placement allows (not to a cluster it excludes), owned by the policy.
// The registry credentials Secret (credentialsSecretRef) appears nowhere.
//
// The controller runs with the shipped RBAC only
// (artifacts/controller/rbac.yaml): reading the Secret and deleting its
// propagation must be allowed.
func TestPullSecretArmedAndPropagated(t *testing.T) {
	h := startWith(t, harnessOptions{shippedRBAC: true, registry: []registry.Option{registry.WithAuth("puller", "pull-only")}})
	for _, name := range []string{"member1", "member2", "member3"} {
		h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	h.statefulSet("member1")
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Placement = &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{"member1", "member2"}}}
	})
	h.create(h.registrySecret(h.ns, "ckpt-pull"))
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.PullSecretRef = &v1alpha1.PullSecretReference{Name: "ckpt-pull"}
		p.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "registry-push"}
	})
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		done := h.agent(true)
		return len(done) == 1, fmt.Sprint(done)
	})

	h.eventually("the restore armed with the pull Secret", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		if op == nil {
			return false, "no OverridePolicy"
		}
		return pullSecretOps(op.Spec.OverrideRules[0]) == `add /spec/template/spec/imagePullSecrets [{"name":"ckpt-pull"}]`,
			fmt.Sprintf("ops %q, policy %s", pullSecretOps(op.Spec.OverrideRules[0]), h.policyConditions())
	})
	op := h.overridePolicy()
	raw, _ := json.Marshal(op.Spec)
	if strings.Contains(string(raw), "registry-push") {
		t.Fatalf("the plan names the push credentials: %s", raw)
	}
	if !strings.Contains(string(raw), restore.AnnotationPullSecret) {
		t.Fatalf("the plan does not record its pull Secret: %s", raw)
	}

	pp := &policyv1alpha1.PropagationPolicy{}
	h.eventually("the pull Secret's PropagationPolicy", 15*time.Second, func() (bool, string) {
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-pull-secret-ckpt-pull"}, pp)
		return err == nil, fmt.Sprint(err)
	})
	sel := pp.Spec.ResourceSelectors
	if len(sel) != 1 || sel[0].APIVersion != "v1" || sel[0].Kind != "Secret" || sel[0].Name != "ckpt-pull" || sel[0].Namespace != h.ns {
		t.Fatalf("selectors = %+v", sel)
	}
	if got := strings.Join(pp.Spec.Placement.ClusterAffinity.ClusterNames, ","); got != "member1,member2" {
		t.Fatalf("the pull Secret goes to %q, want the clusters the placement allows (member1,member2)", got)
	}
	if len(pp.OwnerReferences) != 1 || pp.OwnerReferences[0].Kind != "CheckpointPolicy" || pp.OwnerReferences[0].Name != "protect" {
		t.Fatalf("owners = %+v", pp.OwnerReferences)
	}
	h.pullSecretCondition(metav1.ConditionTrue, v1alpha1.PullSecretReasonAccepted)

	// The placement widens: the Secret follows.
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) { rb.Spec.Placement = nil })
	h.eventually("the pull Secret propagated to every cluster", 15*time.Second, func() (bool, string) {
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-pull-secret-ckpt-pull"}, pp); err != nil {
			return false, err.Error()
		}
		got := strings.Join(pp.Spec.Placement.ClusterAffinity.ClusterNames, ",")
		return got == "member1,member2,member3", got
	})

	// The policy stops naming it: the plan and the propagation drop it.
	// As kubectl edit would: the controller may write the status between
	// the read and the update.
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			return err
		}
		p.Spec.PullSecretRef = nil
		return h.c.Update(h.ctx, p)
	}))
	h.eventually("the pull Secret's propagation deleted", 15*time.Second, func() (bool, string) {
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-pull-secret-ckpt-pull"}, &policyv1alpha1.PropagationPolicy{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	h.eventually("the plan re-armed without the pull Secret", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && pullSecretOps(op.Spec.OverrideRules[0]) == "", ""
	})
}

// TestPullSecretRefused: a pullSecretRef naming a missing Secret, then one
// of another type, then one whose data does not parse, is refused with the PullSecretReady condition and a
// PullSecretRefused Event; the plan is armed without it and nothing is
// propagated. Once a dockerconfigjson Secret of that name exists, the plan
// adds it.
func TestPullSecretRefused(t *testing.T) {
	h := startWith(t, harnessOptions{registry: []registry.Option{registry.WithAuth("puller", "pull-only")}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.PullSecretRef = &v1alpha1.PullSecretReference{Name: "ckpt-pull"}
	})
	h.pullSecretCondition(metav1.ConditionFalse, v1alpha1.PullSecretReasonNotFound)
	h.eventSaying("PullSecretRefused", "ckpt-pull", "does not exist")
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		done := h.agent(true)
		return len(done) == 1, fmt.Sprint(done)
	})
	h.eventually("the restore armed without the pull Secret", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && pullSecretOps(op.Spec.OverrideRules[0]) == "", ""
	})

	opaque := h.registrySecret(h.ns, "ckpt-pull")
	opaque.Type = corev1.SecretTypeOpaque
	h.create(opaque)
	h.pullSecretCondition(metav1.ConditionFalse, v1alpha1.PullSecretReasonWrongType)
	h.eventSaying("PullSecretRefused", "ckpt-pull", string(corev1.SecretTypeOpaque))
	if op := h.overridePolicy(); op == nil || pullSecretOps(op.Spec.OverrideRules[0]) != "" {
		t.Fatalf("a plan names a refused Secret: %+v", op)
	}
	// A Secret of another type may hold anything: it is never carried.
	err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-pull-secret-ckpt-pull"}, &policyv1alpha1.PropagationPolicy{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a refused Secret is propagated: %v", err)
	}

	// A dockerconfigjson whose data does not parse is refused too.
	must(t, h.c.Delete(h.ctx, opaque))
	garbled := h.registrySecret(h.ns, "ckpt-pull")
	garbled.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"registry.example.com":{}}}`) // no credentials in it
	h.create(garbled)
	h.pullSecretCondition(metav1.ConditionFalse, v1alpha1.PullSecretReasonInvalid)

	must(t, h.c.Delete(h.ctx, garbled))
	h.create(h.registrySecret(h.ns, "ckpt-pull"))
	h.pullSecretCondition(metav1.ConditionTrue, v1alpha1.PullSecretReasonAccepted)
	h.eventually("the plan re-armed with the accepted pull Secret", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && pullSecretOps(op.Spec.OverrideRules[0]) != "", ""
	})
	h.eventually("the accepted pull Secret propagated", 15*time.Second, func() (bool, string) {
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-pull-secret-ckpt-pull"}, &policyv1alpha1.PropagationPolicy{})
		return err == nil, fmt.Sprint(err)
	})
}

// pullSecretOps shows the rule's overriders of imagePullSecrets, one per
// line ("" when none).
func pullSecretOps(rule policyv1alpha1.RuleWithCluster) string {
	var out []string
	for _, o := range rule.Overriders.Plaintext {
		if strings.Contains(o.Path, "imagePullSecrets") {
			out = append(out, fmt.Sprintf("%s %s %s", o.Operator, o.Path, o.Value.Raw))
		}
	}
	return strings.Join(out, "\n")
}

// pullSecretCondition waits for the policy's PullSecretReady condition.
func (h *harness) pullSecretCondition(status metav1.ConditionStatus, reason string) {
	h.t.Helper()
	h.eventually("PullSecretReady "+string(status)+" "+reason, 20*time.Second, func() (bool, string) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionPullSecretReady)
		return c != nil && c.Status == status && c.Reason == reason, fmt.Sprintf("%+v", c)
	})
}

// TestManualMoveChecksPullWithPullSecret: a person's move checks that the
// destination can pull the checkpoint with what the plan gives it, the
// pull Secret: the registry wants credentials the policy's registry
// Secret does not have (there is none), the pull Secret has them, and
// the move is made (the source kept in a graceful eviction task).
// Without the pull Secret the same move falls back
// (TestManualMoveChecksTheDestinationCanPull).
func TestManualMoveChecksPullWithPullSecret(t *testing.T) {
	h := startWith(t, harnessOptions{registry: []registry.Option{registry.WithAuth("puller", "pull-only")}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.create(h.registrySecret(h.ns, "ckpt-pull"))
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.Schedule.Interval.Duration = time.Hour
		p.Spec.PullSecretRef = &v1alpha1.PullSecretReference{Name: "ckpt-pull"}
	})
	h.manualMove("to-member2", "member2", time.Minute)
	h.freshCheckpoint("to-member2")
	h.eventually("the move made after the pull check", 20*time.Second, func() (bool, string) {
		rb := h.binding()
		for _, task := range rb.Spec.GracefulEvictionTasks {
			if task.FromCluster == "member1" {
				return true, ""
			}
		}
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "to-member2"}, m)
		return false, fmt.Sprintf("migration %s %q", m.Status.Phase, m.Status.Message)
	})
	h.noWarnings("ImageNotPullable")
}

// policyConditions shows the policy's conditions, for failure messages.
func (h *harness) policyConditions() string {
	p := &v1alpha1.CheckpointPolicy{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v", p.Status.Conditions)
}
