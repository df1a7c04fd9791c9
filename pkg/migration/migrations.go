package migration

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

func isTerminal(p v1alpha1.MigrationPhase) bool {
	return p == v1alpha1.MigrationRestored || p == v1alpha1.MigrationFellBack || p == v1alpha1.MigrationFailed
}

// workloadMigrations lists the Migrations of w from the cache. A Migration
// just created and not in the cache yet is not created twice: the move
// detector names a Migration after the move and the Migration before it,
// so the second Create fails with AlreadyExists.
func (c *Controller) workloadMigrations(ctx context.Context, w *workload) ([]v1alpha1.Migration, error) {
	var l v1alpha1.MigrationList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns())); err != nil {
		return nil, fmt.Errorf("list migrations of %s: %w", w.label(), err)
	}
	var out []v1alpha1.Migration
	for _, m := range l.Items {
		if m.Spec.WorkloadRef.Kind == w.kind() && m.Spec.WorkloadRef.Name == w.name() {
			out = append(out, m)
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
