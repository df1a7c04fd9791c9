package migration

import (
	"context"
	"fmt"
	"reflect"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// armedPolicy reads the workload's restore OverridePolicy from the cache;
// nil when none. Its writer updates with the resourceVersion it read, so
// a stale read ends in a conflict and a retry, never a lost write.
func (c *Controller) armedPolicy(ctx context.Context, w *workload, opts ...client.GetOption) (*policyv1alpha1.OverridePolicy, error) {
	op := &policyv1alpha1.OverridePolicy{}
	key := types.NamespacedName{Namespace: w.ns(), Name: restore.PolicyNameFor(w.kind(), w.name())}
	err := c.Client.Get(ctx, key, op, opts...)
	if apierrors.IsNotFound(err) {
		// One this process created a moment ago, if the cache lags.
		if op, ok := c.plansCreated.recent(key, c.now()); ok {
			return op, nil
		}
		return nil, nil
	}
	if err == nil {
		c.plansCreated.forget(key)
	}
	return op, err
}

// armedPolicyView is armedPolicy for reading only: the cache's own object,
// not a copy (a restore plan names every container's image and its
// original; the copies were a twentieth of the controller's CPU in a
// failover storm, where each reconcile of a policy reads each of its
// plans three times). The caller must not change it.
func (c *Controller) armedPolicyView(ctx context.Context, w *workload) (*policyv1alpha1.OverridePolicy, error) {
	return c.armedPolicy(ctx, w, client.UnsafeDisableDeepCopy)
}

// planOwner is the owner reference of a plan the policy owns (none
// without a policy). A controller reference, not a plain owner: the policy
// controllers watch their plans with Owns(), which follows only controller
// references; with a plain one a plan written between two scheduled rounds
// was reported armed only a round later.
func planOwner(owner *v1alpha1.CheckpointPolicy) []metav1.OwnerReference {
	if owner == nil {
		return nil
	}
	// Not metav1.NewControllerRef: its blockOwnerDeletion needs update on
	// checkpointpolicies/finalizers where an API server enforces owner
	// reference permissions, a right the controller has no other use for.
	return []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "CheckpointPolicy", Name: owner.Name, UID: owner.UID,
		Controller: ptr.To(true),
	}}
}

// excluded is the exclude list of an armed OverridePolicy.
func excluded(op *policyv1alpha1.OverridePolicy) map[string]bool {
	out := map[string]bool{}
	if op == nil {
		return out
	}
	for _, r := range op.Spec.OverrideRules {
		if r.TargetCluster != nil {
			for _, c := range r.TargetCluster.ExcludeClusters {
				out[c] = true
			}
		}
	}
	return out
}

// arm creates or updates the workload's restore OverridePolicy (plan for
// every cluster but exclude, then the receiver rules); with no plan (or
// nothing left to target) it withdraws it.
func (c *Controller) arm(ctx context.Context, owner *v1alpha1.CheckpointPolicy, w *workload, plan *restore.Plan, exclude []string, receivers []policyv1alpha1.RuleWithCluster) error {
	current, err := c.armedPolicy(ctx, w)
	if err != nil {
		return err
	}
	if plan == nil || len(exclude) == 0 {
		return c.withdraw(ctx, current)
	}
	inputs := armInputs(owner, w, plan, exclude, receivers)
	if plansArmed.unchanged(current, inputs) {
		return nil
	}
	tmpl, err := w.template()
	if err != nil {
		return err
	}
	want, err := restore.OverridePolicy(tmpl, *plan, exclude)
	if err != nil {
		return err
	}
	want.Spec.OverrideRules = append(want.Spec.OverrideRules, receivers...)
	want.OwnerReferences = planOwner(owner)
	if current == nil {
		err := c.Client.Create(ctx, want)
		if err == nil {
			plansArmed.remember(want, inputs)
			c.plansCreated.created(want, c.now())
		}
		if !apierrors.IsAlreadyExists(err) {
			return wrapArm(w, err)
		}
		// The cache has not seen an earlier create yet: go on from what the
		// API server has.
		current = &policyv1alpha1.OverridePolicy{}
		if err := c.reader().Get(ctx, client.ObjectKeyFromObject(want), current); err != nil {
			return wrapArm(w, err)
		}
	}
	newer, err := c.armedIsNewer(ctx, w, current, plan.Checkpoint)
	if err != nil {
		return err
	}
	if newer {
		// Two reconcilers arm the same plan: a policy round that read the
		// checkpoints before a Migration's fresh one was verified must not
		// put the older checkpoint back (Karmada would roll the
		// destination twice, first to the older state). Keep the armed
		// checkpoint; only the exclusions follow the binding. The Update
		// below carries current's resourceVersion, so a concurrent re-arm
		// makes it conflict and this round is retried on fresh data.
		// The receiver rules (by cluster name) are this round's.
		want.Annotations = current.Annotations
		want.Spec.OverrideRules = append([]policyv1alpha1.RuleWithCluster{generalRule(current, exclude)}, receivers...)
	}
	// A plan armed by an older release carries a plain owner reference;
	// rewrite it so that Owns() sees the plan's later writes.
	sameOwner := owner == nil || reflect.DeepEqual(current.OwnerReferences, want.OwnerReferences)
	// What an arm that kept a newer checkpoint left depends on that
	// checkpoint, not only on the inputs: not remembered.
	if newer {
		inputs = ""
	}
	same, err := equalPolicy(current, want)
	if err != nil {
		return err
	}
	if same && sameOwner {
		plansArmed.remember(current, inputs)
		return nil
	}
	current.Labels, current.Annotations, current.Spec = want.Labels, want.Annotations, want.Spec
	if owner != nil {
		current.OwnerReferences = want.OwnerReferences
	}
	if err := c.Client.Update(ctx, current); err != nil {
		return fmt.Errorf("re-arm restore of %s/%s: %w", w.ns(), w.label(), err)
	}
	plansArmed.remember(current, inputs)
	return nil
}

// generalRule is the armed policy's rule for every cluster but the
// excluded ones (its first), with exclude as its exclusions.
func generalRule(op *policyv1alpha1.OverridePolicy, exclude []string) policyv1alpha1.RuleWithCluster {
	var rule policyv1alpha1.RuleWithCluster
	for _, r := range op.Spec.OverrideRules {
		if r.TargetCluster != nil && len(r.TargetCluster.ClusterNames) == 0 {
			rule = *r.DeepCopy()
			break
		}
	}
	rule.TargetCluster = &policyv1alpha1.ClusterAffinity{ExcludeClusters: exclude}
	return rule
}

// armedIsNewer says whether the armed plan restores a verified checkpoint
// of w that completed after candidate (so arming candidate would go back
// in time).
func (c *Controller) armedIsNewer(ctx context.Context, w *workload, current *policyv1alpha1.OverridePolicy, candidate string) (bool, error) {
	armed := current.Annotations[restoreKey]
	if armed == "" || armed == candidate {
		return false, nil
	}
	// The other reconciler may have armed it a moment ago: readVerified.
	get := func(name string) (*v1alpha1.Checkpoint, error) {
		cp := &v1alpha1.Checkpoint{}
		err := c.readVerified(ctx, types.NamespacedName{Namespace: w.ns(), Name: name}, cp)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return cp, err
	}
	a, err := get(armed)
	if err != nil || a == nil || a.Labels[LabelWorkload] != w.label() || a.Status.Phase != v1alpha1.CheckpointSucceeded {
		return false, err
	}
	b, err := get(candidate)
	if err != nil || b == nil {
		return false, err
	}
	return newer(a, b), nil
}

// readVerified reads a Checkpoint into cp: a verified Checkpoint's status
// no longer changes, so the cache's copy is used when it shows one
// verified; only one the cache does not (yet) show verified is read from
// the API server.
func (c *Controller) readVerified(ctx context.Context, key types.NamespacedName, cp *v1alpha1.Checkpoint) error {
	if err := c.Client.Get(ctx, key, cp); err == nil && cp.Status.Phase == v1alpha1.CheckpointSucceeded {
		return nil
	}
	return c.reader().Get(ctx, key, cp)
}

func (c *Controller) withdraw(ctx context.Context, op *policyv1alpha1.OverridePolicy) error {
	if op == nil {
		return nil
	}
	c.plansCreated.forget(client.ObjectKeyFromObject(op))
	if err := c.Client.Delete(ctx, op); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("withdraw restore %s/%s: %w", op.Namespace, op.Name, err)
	}
	return nil
}

// equalPolicy says whether two restore OverridePolicies arm the same
// checkpoint with the same spec. A spec that cannot be converted is an
// error, not a difference or a match: two unconvertible specs would
// otherwise compare equal (both nil) and a needed re-arm be skipped.
func equalPolicy(a, b *policyv1alpha1.OverridePolicy) (bool, error) {
	ra, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&a.Spec)
	if err != nil {
		return false, fmt.Errorf("compare OverridePolicy %s/%s: %w", a.Namespace, a.Name, err)
	}
	rb, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&b.Spec)
	if err != nil {
		return false, fmt.Errorf("compare OverridePolicy %s/%s: %w", b.Namespace, b.Name, err)
	}
	return equalJSON(ra, rb) && a.Annotations[restore.AnnotationRestoredFrom] == b.Annotations[restore.AnnotationRestoredFrom], nil
}

func wrapArm(w *workload, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("arm restore of %s/%s: %w", w.ns(), w.label(), err)
}
