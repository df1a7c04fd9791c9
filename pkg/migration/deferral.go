package migration

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// movesInProgress counts the federation's Migrations that are moving a
// workload now: not finished, and not held for a person (a held move
// waits without writing anything).
func (c *Controller) movesInProgress(ctx context.Context) (int, error) {
	var l v1alpha1.MigrationList
	// Read-only: the cache's objects are counted, not kept or changed.
	if err := c.Client.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list migrations in progress: %w", err)
	}
	n := 0
	for i := range l.Items {
		if !isTerminal(l.Items[i].Status.Phase) && !isHeld(&l.Items[i]) {
			n++
		}
	}
	return n, nil
}

// roundDeferral is how long this round lets a due scheduled checkpoint
// wait: Options.ScheduledCheckpointDeferral while moves are in progress,
// else 0. An error to count them takes checkpoints as usual: protection
// does not depend on this optimisation.
func (c *Controller) roundDeferral(ctx context.Context, p *v1alpha1.CheckpointPolicy) time.Duration {
	if c.Options.ScheduledCheckpointDeferral <= 0 {
		return 0
	}
	moves, err := c.movesInProgress(ctx)
	if err != nil {
		klog.FromContext(ctx).Error(err, "scheduled checkpoints are not deferred this round", "policy", klog.KObj(p))
		return 0
	}
	if moves == 0 {
		return 0
	}
	klog.FromContext(ctx).V(2).Info("moves in progress: due scheduled checkpoints wait", "policy", klog.KObj(p), "moves", moves,
		"upTo", c.Options.ScheduledCheckpointDeferral)
	return c.Options.ScheduledCheckpointDeferral
}

// deferredFor is how much longer a pod's due scheduled checkpoint waits
// (0: take it now): up to deferral past the time it fell due. A pod
// without any checkpoint is not deferred, its first one is what arms its
// restore.
func deferredFor(cps []v1alpha1.Checkpoint, interval, deferral time.Duration, now time.Time) time.Duration {
	newest := newestCheckpointTime(cps)
	if deferral <= 0 || newest.IsZero() {
		return 0
	}
	return max(0, newest.Add(interval+deferral).Sub(now))
}
