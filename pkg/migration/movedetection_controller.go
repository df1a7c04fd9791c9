package migration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// MoveDetector is the only creator of Migrations (besides people), and
// deletes finished ones beyond the policy's history: it records a move
// Karmada made (a cluster the workload ran on since the
// last move is no longer bound, and a cluster that did not run it is, or
// one that ran some of its replicas was given more: see Arrivals).
// Where the workload ran is read from its Checkpoints (each names the
// cluster its pod ran on), not from anything the controller remembers, so
// a move seen through an empty binding, or after a restart, is still seen.
type MoveDetector struct{ *Controller }

func setupMoveDetection(mgr manager.Manager, c *Controller) error {
	// A move is a change of the binding (or a cordon): a Checkpoint that
	// settles moves nothing, and the Checkpoints that say where the
	// workload ran were in the cache before it left.
	err := c.policyControllerWithout(mgr, "stateshift-movedetection", 0).Complete(MoveDetector{c})
	if err != nil || !c.Options.WatchClusters {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-cordon").WithOptions(c.bounded()).
		For(&clusterv1alpha1.Cluster{}).
		Complete(ClusterReconciler{c})
}

// Reconcile implements reconcile.Reconciler.
func (r MoveDetector) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p, workloads, err := r.policyWorkloads(ctx, req)
	if p == nil || err != nil {
		return ctrl.Result{}, err
	}
	for _, w := range workloads {
		if err := r.detect(ctx, p, w); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.pruneDeletedWorkloadMigrations(ctx, p); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: interval(p)}, nil
}

// detect records a Migration for a move of w that no Migration covers.
func (r MoveDetector) detect(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload) error {
	rb, err := r.bindingView(ctx, w) // read only
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ms, err := r.workloadMigrations(ctx, w)
	if err != nil {
		return err
	}
	// The history is bounded here, by the creator of Migrations: a
	// workload that moves every day would otherwise keep every move it
	// ever made, in the Karmada API and in every cache of it.
	if err := r.pruneMigrations(ctx, p, w, ms); err != nil {
		return err
	}
	if unfinishedOf(ms) != nil {
		return nil
	}
	cps, err := r.workloadCheckpointsView(ctx, w) // read only
	if err != nil {
		return err
	}
	last := newest(ms)
	sources := LeftClusters(BoundClusters(rb), cps, lastMoveEnd(last))
	dest := Arrivals(w.kind(), w.name(), sources, PodCounts(RanPods(cps, lastMoveEnd(last), time.Time{})), rb)
	if len(sources) == 0 || len(dest) == 0 {
		return nil
	}
	move := strings.Join(sources, ",") + "->" + dest[0]
	if last != nil && moveOf(last) == move {
		return nil
	}
	trigger, err := r.classify(ctx, rb, sources)
	if err != nil {
		return err
	}
	prev := ""
	if last != nil {
		prev = last.Name
	}
	return r.recordMove(ctx, p, w, moveName(w.name(), "move", move, prev), move, trigger, dest[0])
}

// LeftClusters are the clusters not in bound where a Checkpoint of the
// workload was taken after since: the workload ran there after the last
// move ended and has left. With bound nil, every such cluster.
func LeftClusters(bound []string, cps []v1alpha1.Checkpoint, since time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, cp := range cps {
		cl := cp.Labels[LabelCluster]
		if cl == "" || seen[cl] || contains(bound, cl) || !cp.CreationTimestamp.After(since) {
			continue
		}
		seen[cl] = true
		out = append(out, cl)
	}
	sort.Strings(out)
	return out
}

// lastMoveEnd is when the Migration before now ended (zero when none).
func lastMoveEnd(m *v1alpha1.Migration) time.Time {
	switch {
	case m == nil:
		return time.Time{}
	case m.Status.CompletionTime != nil:
		return m.Status.CompletionTime.Time
	}
	return m.CreationTimestamp.Time
}

// moveOf identifies a Migration's move as "<sources>-><destination>".
func moveOf(m *v1alpha1.Migration) string {
	if mv := m.Annotations[AnnotationMove]; mv != "" {
		return mv
	}
	return strings.Join(m.Status.SourceClusters, ",") + "->" + m.Status.DestinationCluster
}

// recordMove creates a Migration for a move the detector saw, already
// Restoring (the move happened; the armed plan restores the destination).
func (r MoveDetector) recordMove(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, name, move string, trigger v1alpha1.MigrationTrigger, dest string) error {
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{AnnotationMove: move},
			Namespace:   w.ns(),
			Labels:      map[string]string{LabelWorkload: w.label(), LabelPolicy: p.Name, LabelManagedBy: ManagedBy},
		},
		// Everything the Migration needs is in what Create writes: the
		// destination in the spec, the sources in AnnotationMove.
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()},
			DestinationCluster: dest,
			Trigger:            trigger,
		},
	}
	if _, ok := r.movesRecorded.recent(client.ObjectKeyFromObject(m), r.now()); ok {
		return nil // recorded a moment ago; the cache does not show it yet
	}
	if err := r.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // another reconcile recorded this move
		}
		return fmt.Errorf("record %s migration of %s: %w", trigger, w.label(), err)
	}
	r.movesRecorded.created(m, r.now())
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "MoveDetected", "%s: %s, recorded as Migration %s", trigger, move, m.Name)
	return nil
}
