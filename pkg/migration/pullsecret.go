package migration

import (
	"context"

	"fmt"
	"github.com/google/go-containerregistry/pkg/authn"
	"reflect"
	"sort"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The pull Secret (CheckpointPolicy spec.pullSecretRef) is how a
// destination pulls the checkpoint images: the restoreplan controller adds
// it to the restored pod template's imagePullSecrets, and the checkpoints
// controller (the only writer of the PropagationPolicies stateshift owns)
// carries it to every cluster the policy's workloads may be placed on, as
// Karmada carries a workload's dependencies. Karmada's own dependency
// propagation (propagateDeps) reads the resource template, which the plan
// never changes (it lives in an OverridePolicy), so it would not see it.
// It is never the policy's credentialsSecretRef: those credentials push
// to and delete from the repository and are not for workloads.

// pullSecretCheck is what the controller observed of a policy's pull
// Secret.
type pullSecretCheck struct {
	// Name is the Secret's name; empty when the policy names none.
	Name string
	// Accepted: it exists in the policy's namespace as a dockerconfigjson.
	Accepted bool
	// Condition is PullSecretReady as it is now.
	Condition metav1.Condition
}

// checkPullSecret reads the policy's pull Secret, from the policy's own
// namespace only (the reference has no namespace) and uncached (see
// Controller.Secrets). An error means the read failed: nothing is decided.
func (c *Controller) checkPullSecret(ctx context.Context, p *v1alpha1.CheckpointPolicy) (pullSecretCheck, error) {
	if p.Spec.PullSecretRef == nil || p.Spec.PullSecretRef.Name == "" {
		return pullSecretCheck{}, nil
	}
	name := p.Spec.PullSecretRef.Name
	check := pullSecretCheck{Name: name, Condition: metav1.Condition{
		Type: v1alpha1.ConditionPullSecretReady, Status: metav1.ConditionFalse, ObservedGeneration: p.Generation,
	}}
	_, reason, why, err := c.readPullSecret(ctx, p.Namespace, name)
	switch {
	case err != nil:
		return check, err
	case reason == v1alpha1.PullSecretReasonNotFound:
		check.Condition.Reason = reason
		check.Condition.Message = fmt.Sprintf("pull Secret %s/%s does not exist: restore plans are armed without it (destinations pull with their nodes' credentials)", p.Namespace, name)
	case reason != "":
		check.Condition.Reason = reason
		check.Condition.Message = fmt.Sprintf("pull Secret %s/%s refused: %s: it is neither propagated nor named by restore plans, which are armed without it", p.Namespace, name, why)
	default:
		check.Accepted = true
		check.Condition.Status, check.Condition.Reason = metav1.ConditionTrue, v1alpha1.PullSecretReasonAccepted
		check.Condition.Message = fmt.Sprintf("restored pods pull with Secret %s, propagated to the clusters the workloads may be placed on", name)
	}
	return check, nil
}

// readPullSecret reads Secret ns/name and, when it cannot be a pull Secret,
// says why (a PullSecretReason and a message without its data).
func (c *Controller) readPullSecret(ctx context.Context, ns, name string) (*corev1.Secret, string, string, error) {
	s := &corev1.Secret{}
	err := c.secrets().Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, v1alpha1.PullSecretReasonNotFound, "not found", nil
	case err != nil:
		return nil, "", "", fmt.Errorf("read pull Secret %s/%s: %w", ns, name, err)
	case s.Type != corev1.SecretTypeDockerConfigJson:
		return nil, v1alpha1.PullSecretReasonWrongType, fmt.Sprintf("type %q, not %s", s.Type, corev1.SecretTypeDockerConfigJson), nil
	}
	if _, err := registryauth.Parse(s); err != nil {
		return nil, v1alpha1.PullSecretReasonInvalid, err.Error(), nil
	}
	return s, "", "", nil
}

// destinationKeychain is what a destination pulls the plan's images with,
// as far as the controller can tell: the accepted pull Secret; without
// one, the policy's registry credentials (the nodes' own are not known
// here).
func (c *Controller) destinationKeychain(ctx context.Context, p *v1alpha1.CheckpointPolicy) (authn.Keychain, error) {
	if p.Spec.PullSecretRef == nil || p.Spec.PullSecretRef.Name == "" {
		return c.keychain(ctx, p), nil
	}
	s, reason, _, err := c.readPullSecret(ctx, p.Namespace, p.Spec.PullSecretRef.Name)
	if err != nil || reason != "" {
		return c.keychain(ctx, p), err
	}
	cfg, err := registryauth.Parse(s)
	if err != nil {
		return nil, err
	}
	return cfg.Keychain(), nil
}

func (c *Controller) secrets() client.Reader {
	if c.Secrets != nil {
		return c.Secrets
	}
	return c.reader()
}

// planPullSecret is the Secret a plan of the policy adds to the restored
// pods: the pull Secret when it is accepted, none otherwise (refused: the
// plan is armed as without one, the checkpoints controller reports why).
func (c *Controller) planPullSecret(ctx context.Context, p *v1alpha1.CheckpointPolicy) (string, error) {
	check, err := c.checkPullSecret(ctx, p)
	if err != nil || !check.Accepted {
		return "", err
	}
	return check.Name, nil
}

// reportPullSecret sets the policy's PullSecretReady condition (removes it
// when the policy names no Secret), says why a Secret is refused in an
// Event, and keeps the Secret's propagation.
func (r CheckpointReconciler) reportPullSecret(ctx context.Context, p *v1alpha1.CheckpointPolicy, status *v1alpha1.CheckpointPolicyStatus) error {
	check, err := r.checkPullSecret(ctx, p)
	if err != nil {
		return err
	}
	if check.Name == "" {
		meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionPullSecretReady)
	} else {
		meta.SetStatusCondition(&status.Conditions, check.Condition)
	}
	if check.Name != "" && !check.Accepted {
		r.Recorder.Eventf(p, corev1.EventTypeWarning, "PullSecretRefused", "%s", check.Condition.Message)
	}
	return r.propagatePullSecrets(ctx, p.Namespace)
}

// propagatePullSecrets makes the PropagationPolicies that carry the pull
// Secrets the namespace's policies name match what they name now: one per
// accepted Secret, to every cluster a workload of those policies may be
// placed on; one no policy names any more, or refused, is deleted. All follows from the policies,
// bindings and clusters observed now, so any policy's round gives the same
// result.
func (c *Controller) propagatePullSecrets(ctx context.Context, ns string) error {
	var policies v1alpha1.CheckpointPolicyList
	if err := c.Client.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("list CheckpointPolicies of %s: %w", ns, err)
	}
	named := pullSecretUsers(policies.Items)
	for _, secret := range sortedKeys(named) {
		// A refused Secret is not carried anywhere (one of another type
		// may hold anything); its propagation, if any, goes below.
		_, reason, _, err := c.readPullSecret(ctx, ns, secret)
		if err != nil {
			return err
		}
		if reason != "" {
			delete(named, secret)
			continue
		}
		if err := c.propagatePullSecret(ctx, ns, secret, named[secret]); err != nil {
			return err
		}
	}
	return c.pruneStalePullSecretPropagation(ctx, ns, named)
}

// pullSecretUsers maps each pull Secret name to the policies naming it,
// by name.
func pullSecretUsers(policies []v1alpha1.CheckpointPolicy) map[string][]*v1alpha1.CheckpointPolicy {
	out := map[string][]*v1alpha1.CheckpointPolicy{}
	for i := range policies {
		p := &policies[i]
		if p.DeletionTimestamp == nil && p.Spec.PullSecretRef != nil && p.Spec.PullSecretRef.Name != "" {
			out[p.Spec.PullSecretRef.Name] = append(out[p.Spec.PullSecretRef.Name], p)
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	return out
}

// propagatePullSecret creates or updates the PropagationPolicy of one pull
// Secret. With no cluster to go to, nothing is written: an empty cluster
// list would place it on every cluster.
func (c *Controller) propagatePullSecret(ctx context.Context, ns, secret string, users []*v1alpha1.CheckpointPolicy) error {
	clusters, err := c.pullSecretClusters(ctx, users)
	if err != nil || len(clusters) == 0 {
		return err
	}
	want := PullSecretPropagation(ns, secret, clusters, users)
	got, err := c.existingPropagation(ctx, want)
	if err != nil || got == nil {
		return err
	}
	if reflect.DeepEqual(got.Spec, want.Spec) && reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) &&
		reflect.DeepEqual(got.Labels, want.Labels) && reflect.DeepEqual(got.Annotations, want.Annotations) {
		return nil
	}
	got.Spec, got.OwnerReferences, got.Labels, got.Annotations = want.Spec, want.OwnerReferences, want.Labels, want.Annotations
	if err := c.Client.Update(ctx, got); err != nil {
		return fmt.Errorf("update PropagationPolicy %s/%s: %w", ns, want.Name, err)
	}
	return nil
}

// PullSecretPropagation is the PropagationPolicy carrying pull Secret
// secret of namespace ns to clusters, owned by the policies naming it
// (deleting the last deletes it). It tolerates every taint: a cordoned
// cluster that runs a workload keeps the Secret its restored pods use.
func PullSecretPropagation(ns, secret string, clusters []string, users []*v1alpha1.CheckpointPolicy) *policyv1alpha1.PropagationPolicy {
	pp := &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: pullSecretPropagationName(secret), Namespace: ns,
			Labels:      map[string]string{LabelManagedBy: ManagedBy, v1alpha1.LabelPullSecret: "true"},
			Annotations: map[string]string{v1alpha1.LabelPullSecret: secret},
		},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: "v1", Kind: "Secret", Namespace: ns, Name: secret}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity:    &policyv1alpha1.ClusterAffinity{ClusterNames: clusters},
				ClusterTolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			},
		},
	}
	for _, p := range users {
		pp.OwnerReferences = append(pp.OwnerReferences, metav1.OwnerReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "CheckpointPolicy", Name: p.Name, UID: p.UID,
		})
	}
	return pp
}

// pullSecretClusters are the clusters the workloads of users may be placed
// on: those their bindings' placement allows, and those they are bound to
// now, sorted.
func (c *Controller) pullSecretClusters(ctx context.Context, users []*v1alpha1.CheckpointPolicy) ([]string, error) {
	var all clusterv1alpha1.ClusterList
	if err := c.Client.List(ctx, &all); err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	set := map[string]bool{}
	for _, p := range users {
		workloads, err := c.selectedWorkloads(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, w := range workloads {
			rb, err := c.bindingView(ctx, w) // read only
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, name := range PlaceableClusters(rb, all.Items) {
				set[name] = true
			}
		}
	}
	return sortedKeys(set), nil
}

// PlaceableClusters are the clusters a binding's placement lets Karmada
// place the workload on (any of its cluster affinities; every cluster when
// it has none), plus those it is bound to now.
func PlaceableClusters(rb *workv1alpha2.ResourceBinding, clusters []clusterv1alpha1.Cluster) []string {
	var affinities []policyv1alpha1.ClusterAffinity
	if pl := rb.Spec.Placement; pl != nil {
		if pl.ClusterAffinity != nil {
			affinities = append(affinities, *pl.ClusterAffinity)
		}
		for _, term := range pl.ClusterAffinities {
			affinities = append(affinities, term.ClusterAffinity)
		}
	}
	set := map[string]bool{}
	for _, tc := range rb.Spec.Clusters {
		set[tc.Name] = true
	}
	for i := range clusters {
		cl := &clusters[i]
		matches := len(affinities) == 0
		for _, a := range affinities {
			matches = matches || util.ClusterMatches(cl, a)
		}
		if matches {
			set[cl.Name] = true
		}
	}
	return sortedKeys(set)
}

// pruneStalePullSecretPropagation deletes the pull Secret
// PropagationPolicies of ns whose Secret is not in named (no policy names
// it any more, or it is refused).
func (c *Controller) pruneStalePullSecretPropagation(ctx context.Context, ns string, named map[string][]*v1alpha1.CheckpointPolicy) error {
	var l policyv1alpha1.PropagationPolicyList
	if err := c.Client.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{LabelManagedBy: ManagedBy, v1alpha1.LabelPullSecret: "true"}); err != nil {
		return fmt.Errorf("list pull Secret PropagationPolicies of %s: %w", ns, err)
	}
	for i := range l.Items {
		pp := &l.Items[i]
		if len(named[pp.Annotations[v1alpha1.LabelPullSecret]]) > 0 {
			continue
		}
		if err := c.Client.Delete(ctx, pp); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete PropagationPolicy %s/%s: %w", ns, pp.Name, err)
		}
	}
	return nil
}
