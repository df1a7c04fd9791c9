package migration

import (
	"context"
	"fmt"
	"sync"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// recentlyLostMembers names the member clusters lost within window: Karmada
// is about to evict their workloads, and the moves' writes (its taint
// manager's, karmada-scheduler's, then the failover Migrations') should
// find the Karmada API server free before any Migration exists to say so.
// In a storm of 100 failovers, karmada-scheduler placed the first
// bindings 10-40 s after the loss, while a round of scheduled checkpoints
// was still writing. A member lost longer ago than window no longer
// defers anything by itself: its moves are in progress (and counted) or
// Karmada has none to make.
func (c *Controller) recentlyLostMembers(ctx context.Context, window time.Duration) ([]string, error) {
	var l clusterv1alpha1.ClusterList
	// Read-only, as movesInProgress.
	if err := c.Client.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	now := c.now()
	var lost []string
	for i := range l.Items {
		if lostWithin(&l.Items[i], now, window) {
			lost = append(lost, l.Items[i].Name)
		}
	}
	return lost, nil
}

// lostWithin says whether cl was lost in the window before now: a NoExecute
// taint added then (Karmada's API server stamps TimeAdded; a person's
// `karmadactl taint`, or Karmada's own failover taint), or a Ready
// condition that turned False or Unknown then. A cluster that never
// reported Ready (one joining) is not lost.
func lostWithin(cl *clusterv1alpha1.Cluster, now time.Time, window time.Duration) bool {
	since := metav1.NewTime(now.Add(-window))
	for _, t := range cl.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute && t.TimeAdded != nil && !t.TimeAdded.Before(&since) {
			return true
		}
	}
	ready := meta.FindStatusCondition(cl.Status.Conditions, clusterv1alpha1.ClusterConditionReady)
	return ready != nil && ready.Status != metav1.ConditionTrue && !ready.LastTransitionTime.Before(&since)
}

// roundDeferral is how long this round lets a due scheduled checkpoint
// wait: Options.ScheduledCheckpointDeferral while moves are in progress or
// a member was lost within that time, else 0. An error to count them takes
// checkpoints as usual: protection does not depend on this optimisation.
func (c *Controller) roundDeferral(ctx context.Context, p *v1alpha1.CheckpointPolicy) time.Duration {
	deferral := c.Options.ScheduledCheckpointDeferral
	if deferral <= 0 {
		return 0
	}
	log := klog.FromContext(ctx)
	moves, err := c.movesInProgress(ctx)
	if err != nil {
		log.Error(err, "scheduled checkpoints are not deferred this round", "policy", klog.KObj(p))
		return 0
	}
	if moves > 0 {
		log.V(2).Info("moves in progress: due scheduled checkpoints wait", "policy", klog.KObj(p), "moves", moves, "upTo", deferral)
		return deferral
	}
	lost, err := c.recentlyLostMembers(ctx, deferral)
	if err != nil {
		log.Error(err, "scheduled checkpoints are not deferred this round", "policy", klog.KObj(p))
		return 0
	}
	if len(lost) == 0 {
		return 0
	}
	log.V(2).Info("members lost: due scheduled checkpoints wait for their moves", "policy", klog.KObj(p), "clusters", lost, "upTo", deferral)
	return deferral
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

// stormPassSpacing is the least time between two passes of one policy's
// checkpoints or restoreplan reconcile while a member is lost (within the
// deferral): a failover storm changes a moved workload's Migration,
// binding and plan several times each, and every change made both
// controllers visit every workload of the policy again, 22% of a storm's
// CPU at 100 workloads a policy, while what they would do then waits for
// the storm anyway (scheduled checkpoints, re-arms, retention, status).
// Nothing is paced without a lost member: a person's move has its plan
// armed at once (during a failover storm, 2 s later at most).
const stormPassSpacing = 2 * time.Second

// passPacer spaces a controller's passes of each policy while a member is
// lost; memory only.
type passPacer struct{ last sync.Map } // types.NamespacedName -> passMark

type passMark struct {
	at   time.Time
	lost bool
}

// wait is how much longer a pass of key waits (0: run it now).
func (p *passPacer) wait(key types.NamespacedName, now time.Time) time.Duration {
	v, ok := p.last.Load(key)
	if !ok || !v.(passMark).lost {
		return 0
	}
	return max(0, v.(passMark).at.Add(stormPassSpacing).Sub(now))
}

// passed records a pass of key that started at now, and whether a member
// was lost then.
func (p *passPacer) passed(key types.NamespacedName, now time.Time, lost bool) {
	p.last.Store(key, passMark{at: now, lost: lost})
}

// memberLost says whether a member was lost within the deferral (none
// when the deferral is off, or the clusters cannot be read).
func (c *Controller) memberLost(ctx context.Context) bool {
	deferral := c.Options.ScheduledCheckpointDeferral
	if deferral <= 0 {
		return false
	}
	lost, err := c.recentlyLostMembers(ctx, deferral)
	return err == nil && len(lost) > 0
}
