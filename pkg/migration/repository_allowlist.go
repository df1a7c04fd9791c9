package migration

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// AnnotationAllowedRepositories on a Namespace of the Karmada API lists,
// comma-separated, the repositories the namespace's checkpoints may go
// to: an entry allows itself and every repository under it
// ("registry.example.com/team-a" allows "registry.example.com/team-a/db").
// Tenants usually cannot edit their Namespace, so an administrator sets
// it, like the Pod Security labels. artifacts/security/checkpoint-
// repositories.yaml enforces it at admission; the controller checks it
// again before every Checkpoint it creates.
const AnnotationAllowedRepositories = v1alpha1.KeyPrefix + "allowed-repositories"

// RepositoryAllowed says whether repository is one of the comma-separated
// entries of list or under one of them.
func RepositoryAllowed(repository, list string) bool {
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSuffix(strings.TrimSpace(entry), "/")
		if entry == "" {
			continue
		}
		if repository == entry || strings.HasPrefix(repository, entry+"/") {
			return true
		}
	}
	return false
}

// checkRepository refuses a policy whose repository its namespace may not
// use: a checkpoint is a memory dump, and a tenant must not send one to a
// repository another tenant reads. A namespace without the annotation may
// use any repository unless Options.RequireRepositoryAllowlist is set.
// repositoryVerdict is one round's answer of checkRepository, shared by the
// workloads the round checkpoints: one namespace read (and at most one
// RepositoryNotAllowed Event) per round instead of one per Checkpoint.
type repositoryVerdict struct {
	once sync.Once
	err  error
}

type repositoryVerdictKey struct{}

// withRepositoryVerdict gives ctx a place for a round's verdict.
func withRepositoryVerdict(ctx context.Context) context.Context {
	return context.WithValue(ctx, repositoryVerdictKey{}, &repositoryVerdict{})
}

// checkRepositoryOnce is checkRepository, asked once per round when ctx
// is a round's (withRepositoryVerdict).
func (c *Controller) checkRepositoryOnce(ctx context.Context, p *v1alpha1.CheckpointPolicy) error {
	v, ok := ctx.Value(repositoryVerdictKey{}).(*repositoryVerdict)
	if !ok {
		return c.checkRepository(ctx, p)
	}
	v.once.Do(func() { v.err = c.checkRepository(ctx, p) })
	return v.err
}

func (c *Controller) checkRepository(ctx context.Context, p *v1alpha1.CheckpointPolicy) error {
	ns := &corev1.Namespace{}
	if err := c.reader().Get(ctx, client.ObjectKey{Name: p.Namespace}, ns); err != nil {
		return fmt.Errorf("read namespace %s for its allowed checkpoint repositories: %w", p.Namespace, err)
	}
	list, annotated := ns.Annotations[AnnotationAllowedRepositories]
	if !annotated && !c.Options.RequireRepositoryAllowlist {
		return nil
	}
	if RepositoryAllowed(p.Spec.Repository, list) {
		return nil
	}
	err := fmt.Errorf("RepositoryNotAllowed: repository %s is not allowed for namespace %s (its annotation %s lists %q): no checkpoint is taken",
		p.Spec.Repository, p.Namespace, AnnotationAllowedRepositories, list)
	c.Recorder.Eventf(p, corev1.EventTypeWarning, "RepositoryNotAllowed", "%v", err)
	return err
}

// ownCheckpoints selects, for a cluster, only the Checkpoints the
// controller made (its managed-by label beside the cluster label): a
// Checkpoint someone else creates in the Karmada API with the cluster
// label alone is not forwarded to the member. Creating one with both
// labels is refused by artifacts/security/checkpoint-admission.yaml to all
// but stateshift's identities when applied to the Karmada API.
func ownCheckpoints(cluster string) map[string]string {
	return map[string]string{LabelCluster: cluster, LabelManagedBy: ManagedBy}
}

// stalePropagation says whether a PropagationPolicy an earlier version made
// must be brought up to want: a missing toleration (before NoExecute was
// tolerated, Karmada evicted a lost member's Checkpoints), or a selector
// that forwards Checkpoints the controller did not make. Tolerations
// karmada-webhook adds (its not-ready and unreachable defaults) are not
// a difference.
func stalePropagation(got, want *policyv1alpha1.PropagationPolicy) bool {
	for _, t := range want.Spec.Placement.ClusterTolerations {
		if !slices.ContainsFunc(got.Spec.Placement.ClusterTolerations, func(g corev1.Toleration) bool { return t.MatchToleration(&g) }) {
			return true
		}
	}
	return !reflect.DeepEqual(got.Spec.ResourceSelectors, want.Spec.ResourceSelectors) ||
		got.Spec.SchedulerName != want.Spec.SchedulerName
}
