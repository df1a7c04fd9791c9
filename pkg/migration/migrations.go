package migration

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func isTerminal(p v1alpha1.MigrationPhase) bool {
	return p == v1alpha1.MigrationRestored || p == v1alpha1.MigrationFellBack || p == v1alpha1.MigrationFailed
}

// migrationWorkloadIndex indexes the cached Migrations by the workload
// they move (workloadLabel of spec.workloadRef): every policy reconcile
// asks for each of its workloads' Migrations, and after storms a
// namespace holds a Migration for each moved workload, so scanning the
// namespace for each workload grew with workloads times Migrations.
const migrationWorkloadIndex = "stateshift.io/migration-workload"

func indexMigrationWorkload(o client.Object) []string {
	m, ok := o.(*v1alpha1.Migration)
	if !ok || m.Spec.WorkloadRef.Name == "" {
		return nil
	}
	return []string{workloadLabel(m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name)}
}

// workloadMigrations lists the Migrations of w from the cache. A Migration
// just created and not in the cache yet is not created twice: the move
// detector names a Migration after the move and the Migration before it,
// so the second Create fails with AlreadyExists.
//
// The index finds only w's Migrations; the index key is not unique to
// kind and name in every case (workloadLabel keeps the label short), so
// the reference is compared again before a Migration is copied.
func (c *Controller) workloadMigrations(ctx context.Context, w *workload) ([]v1alpha1.Migration, error) {
	var l v1alpha1.MigrationList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns()), client.MatchingFields{migrationWorkloadIndex: w.label()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list migrations of %s: %w", w.label(), err)
	}
	var out []v1alpha1.Migration
	for i := range l.Items {
		if m := &l.Items[i]; m.Spec.WorkloadRef.Kind == w.kind() && m.Spec.WorkloadRef.Name == w.name() {
			out = append(out, *m.DeepCopy())
		}
	}
	return out, nil
}

// unfinishedOf is the first Migration not in a terminal phase, or nil.
func unfinishedOf(ms []v1alpha1.Migration) *v1alpha1.Migration {
	for i := range ms {
		if !isTerminal(ms[i].Status.Phase) {
			return &ms[i]
		}
	}
	return nil
}

// lastRestoredOf is the Migration that restored the workload most
// recently, or nil.
func lastRestoredOf(ms []v1alpha1.Migration) *v1alpha1.Migration {
	var last *v1alpha1.Migration
	at := func(m *v1alpha1.Migration) int64 {
		if m.Status.CompletionTime != nil {
			return m.Status.CompletionTime.UnixNano()
		}
		return m.CreationTimestamp.UnixNano()
	}
	for i := range ms {
		if ms[i].Status.Phase == v1alpha1.MigrationRestored && (last == nil || at(&ms[i]) > at(last)) {
			last = &ms[i]
		}
	}
	return last
}

// activeMigration finds an unfinished Migration of the workload.
func (c *Controller) activeMigration(ctx context.Context, w *workload) (*v1alpha1.Migration, error) {
	ms, err := c.workloadMigrations(ctx, w)
	if err != nil {
		return nil, err
	}
	return unfinishedOf(ms), nil
}

// MigrationsBeyondHistory are the finished Migrations of one workload that
// its policy's history (keep, Retention.Migrations) no longer keeps:
// all but the keep newest finished ones (by when they finished) and the
// newest Restored one, which checkpoint retention still reads. Unfinished
// Migrations are never among them.
func MigrationsBeyondHistory(ms []v1alpha1.Migration, keep int) []*v1alpha1.Migration {
	var finished []*v1alpha1.Migration
	for i := range ms {
		if isTerminal(ms[i].Status.Phase) {
			finished = append(finished, &ms[i])
		}
	}
	if len(finished) <= keep {
		return nil
	}
	sort.SliceStable(finished, func(i, j int) bool {
		a, b := lastMoveEnd(finished[i]), lastMoveEnd(finished[j])
		if !a.Equal(b) {
			return a.After(b)
		}
		return finished[i].Name > finished[j].Name
	})
	restored := lastRestoredOf(ms)
	var out []*v1alpha1.Migration
	for _, m := range finished[keep:] {
		if m != restored {
			out = append(out, m)
		}
	}
	return out
}

// pruneMigrations deletes w's finished Migrations beyond p's history.
// Each delete names the Migration's UID: a newer object of the same name
// is not deleted; one already gone (a cache behind) is not an error.
func (c *Controller) pruneMigrations(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, ms []v1alpha1.Migration) error {
	for _, m := range MigrationsBeyondHistory(ms, p.MigrationHistory()) {
		uid := m.UID
		err := c.Client.Delete(ctx, m, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete Migration %s of %s beyond the policy's history of %d: %w", m.Name, w.label(), p.MigrationHistory(), err)
		}
	}
	return nil
}

// MigrationsOfDeletedWorkloads are the finished Migrations among ms whose
// workload has no template any more (exists holds workloadLabel of every
// template of the namespace not being deleted). The history a policy keeps
// per workload (MigrationsBeyondHistory) is kept only while the workload
// exists, as its Checkpoints are: a namespace whose workloads come and go
// would otherwise keep every Migration they ever made. Unfinished ones are
// never among them (a person's Migration may name a workload about to be
// created).
func MigrationsOfDeletedWorkloads(ms []v1alpha1.Migration, exists map[string]bool) []*v1alpha1.Migration {
	var out []*v1alpha1.Migration
	for i := range ms {
		m := &ms[i]
		if isTerminal(m.Status.Phase) && m.DeletionTimestamp == nil && !exists[workloadLabel(m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name)] {
			out = append(out, m)
		}
	}
	return out
}

// pruneDeletedWorkloadMigrations deletes the finished Migrations of p's
// namespace whose workload template is gone, each by its UID. It reads the
// cache: a Migration is made for a template the cache has seen, and one
// listed while the cache is behind a template's re-creation belonged to
// the deleted one anyway.
func (c *Controller) pruneDeletedWorkloadMigrations(ctx context.Context, p *v1alpha1.CheckpointPolicy) error {
	var l v1alpha1.MigrationList
	if err := c.Client.List(ctx, &l, client.InNamespace(p.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list migrations in %s: %w", p.Namespace, err)
	}
	exists, err := c.existingWorkloads(ctx, p.Namespace)
	if err != nil {
		return err
	}
	for _, m := range MigrationsOfDeletedWorkloads(l.Items, exists) {
		uid := m.UID
		gone := &v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace}}
		err := c.Client.Delete(ctx, gone, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete Migration %s of deleted workload %s/%s: %w", m.Name, m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name, err)
		}
	}
	return nil
}
