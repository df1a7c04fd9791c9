package migration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// ClusterReconciler watches Karmada Clusters for `karmadactl cordon`
// (taint cluster.karmada.io/unschedulable:NoSchedule). A cordon evicts
// nothing, but announces a move: for every protected workload on the
// cluster it starts a Cordon Migration, which holds the binding's
// scheduling, takes a fresh checkpoint and arms it before a reschedule
// (WorkloadRebalancer) can move the workload. A Cordon Migration whose move
// cannot happen (uncordoned, nowhere to go, the source dropped with no new
// cluster) ends Failed with the reason: see CordonEnd and noMove.
type ClusterReconciler struct{ *Controller }

// Reconcile implements reconcile.Reconciler.
func (r ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cl := &clusterv1alpha1.Cluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, cl); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !taintedFor(cl, clusterv1alpha1.TaintClusterUnscheduler, corev1.TaintEffectNoSchedule) {
		return ctrl.Result{}, nil
	}
	var policies v1alpha1.CheckpointPolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return ctrl.Result{}, err
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		workloads, err := r.selectedWorkloads(ctx, p)
		if err != nil {
			return ctrl.Result{}, err
		}
		for _, w := range workloads {
			if err := r.cordoned(ctx, p, w, cl); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, nil
}

func (r ClusterReconciler) cordoned(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, cl *clusterv1alpha1.Cluster) error {
	cluster := cl.Name
	rb, err := r.bindingView(ctx, w) // read only
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !contains(BoundClusters(rb), cluster) {
		return nil
	}
	if active, err := r.activeMigration(ctx, w); err != nil || active != nil {
		return err
	}
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			// One name per cordon: the Cluster's generation moves with every
			// taint change, so a later cordon (karmadactl sets no timeAdded)
			// gets its own Migration, and racing reconciles of this one do not.
			Name:      moveName(w.name(), "cordon", cluster, strconv.FormatInt(cl.Generation, 10)),
			Namespace: w.ns(),
			Labels:    map[string]string{LabelWorkload: w.label(), LabelPolicy: p.Name, LabelCluster: cluster, LabelManagedBy: ManagedBy},
		},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: w.kind(), Name: w.name()},
			Trigger:     v1alpha1.TriggerCordon,
		},
	}
	if err := r.Client.Create(ctx, m); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("cordon of %s: migration of %s: %w", cluster, w.label(), err)
	}
	r.Recorder.Eventf(w.obj, corev1.EventTypeNormal, "Cordoned", "cluster %s cordoned: Migration %s takes a fresh checkpoint before any reschedule", cluster, m.Name)
	return nil
}

// Reasons a Cordon Migration ends without a move (condition Restored=False,
// phase Failed: see noMove).
const (
	// ReasonCordonLifted: the cordoned cluster was uncordoned before Karmada
	// moved the workload: the move is off.
	ReasonCordonLifted = "CordonLifted"
	// ReasonNoNewCluster: the cordoned cluster left the binding and every
	// cluster still bound already ran the workload: nothing received it.
	ReasonNoNewCluster = "NoNewCluster"
	// ReasonNoDestination: no cluster outside the binding can take the
	// workload (e.g. a Duplicated placement already on every cluster it
	// allows): a reschedule can only drop the cordoned cluster.
	ReasonNoDestination = "NoDestination"
)

// CordonState is what decides whether a Cordon Migration still has a move
// to make.
type CordonState struct {
	// Cordoned are the cordoned sources (the Migration's cluster label).
	Cordoned []string
	// Sources ran the workload when the Migration started.
	Sources []string
	// Bound are the clusters the binding places the workload on now.
	Bound []string
	// Arrived are the clusters the move went to (Arrivals): new ones, and
	// ones that ran some replicas and were given more.
	Arrived []string
	// Scheduled: Karmada's scheduler has placed the binding's current spec
	// (status.schedulerObservedGeneration == generation; it is set on
	// success only). An eviction removes the source from spec.clusters
	// before the scheduler picks the destination.
	Scheduled bool
	// Lifted: every cordoned source is known and no longer cordoned.
	Lifted bool
	// Elsewhere are the clusters outside the binding Karmada's scheduler
	// could place the workload on (see CanPlace); ElsewhereKnown is false
	// when the clusters could not be read (then nothing is concluded).
	Elsewhere      []string
	ElsewhereKnown bool
	// Receivable are the bound clusters other than the sources that can
	// take the cordoned replicas beside their own (a Divided StatefulSet:
	// see Receivers).
	Receivable []string
}

// CordonEnd says why a Cordon Migration is over although Karmada placed the
// workload on no new cluster, or "" while its move can still happen. A
// cluster the move went to always wins (a new one, or one given more
// replicas while it ran others): that is the move, and it is restored.
func CordonEnd(s CordonState) (reason, message string) {
	if len(s.Arrived) > 0 {
		return "", ""
	}
	var left []string
	for _, c := range s.Cordoned {
		if !contains(s.Bound, c) {
			left = append(left, c)
		}
	}
	if len(left) > 0 {
		if len(s.Bound) == 0 || !s.Scheduled {
			// Mid-move (the source evicted, the scheduler has not placed
			// the workload again), or placed nowhere yet: the armed plan
			// waits for the destination, whatever the cordon does now.
			return "", ""
		}
		return ReasonNoNewCluster, fmt.Sprintf("%s left the binding and every cluster still bound (%s) already ran the workload: no cluster received it, nothing was restored",
			strings.Join(left, ","), strings.Join(s.Bound, ","))
	}
	switch {
	case s.Lifted:
		return ReasonCordonLifted, fmt.Sprintf("%s was uncordoned before Karmada moved the workload: no move, nothing to restore",
			strings.Join(s.Cordoned, ","))
	case s.ElsewhereKnown && len(s.Elsewhere) == 0 && len(s.Receivable) == 0:
		return ReasonNoDestination, fmt.Sprintf("no cluster outside the binding (%s) can take the workload (every other cluster is excluded by its placement, tainted or being deleted): a reschedule can only drop %s, nothing to restore",
			strings.Join(s.Bound, ","), strings.Join(s.Cordoned, ","))
	}
	return "", ""
}

// CanPlace says whether Karmada's scheduler could place a binding with
// placement p on cl (a cluster not yet in the binding). It over-approximates
// on purpose, so that a Cordon Migration is never ended while a destination
// exists: it checks deletion, NoSchedule/NoExecute taints against the
// placement's clusterTolerations (Karmada's TaintToleration filter) and the
// cluster affinity (names, exclude, labelSelector; any group of
// clusterAffinities); a fieldSelector, spread constraints, API enablement
// and resources are taken as allowing the cluster.
func CanPlace(p *policyv1alpha1.Placement, cl *clusterv1alpha1.Cluster) bool {
	if cl.DeletionTimestamp != nil {
		return false
	}
	var tolerations []corev1.Toleration
	if p != nil {
		tolerations = p.ClusterTolerations
	}
	for i := range cl.Spec.Taints {
		t := &cl.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	switch {
	case p == nil:
		return true
	case len(p.ClusterAffinities) > 0:
		for i := range p.ClusterAffinities {
			if affinityMatches(&p.ClusterAffinities[i].ClusterAffinity, cl) {
				return true
			}
		}
		return false
	case p.ClusterAffinity != nil:
		return affinityMatches(p.ClusterAffinity, cl)
	}
	return true
}

func affinityMatches(a *policyv1alpha1.ClusterAffinity, cl *clusterv1alpha1.Cluster) bool {
	if contains(a.ExcludeClusters, cl.Name) {
		return false
	}
	if len(a.ClusterNames) > 0 && !contains(a.ClusterNames, cl.Name) {
		return false
	}
	if a.LabelSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(a.LabelSelector)
		if err != nil || !s.Matches(labels.Set(cl.Labels)) {
			return false
		}
	}
	return true
}

// cordonState reads what CordonEnd decides on for a Cordon Migration.
func (c *Controller) cordonState(ctx context.Context, w *workload, m *v1alpha1.Migration, rb *workv1alpha2.ResourceBinding) (CordonState, error) {
	s := CordonState{Sources: m.Status.SourceClusters, Bound: BoundClusters(rb), Scheduled: rb.Status.SchedulerObservedGeneration == rb.Generation}
	arrived, err := c.arrivals(ctx, w, m, rb)
	if err != nil {
		return s, err
	}
	s.Arrived = arrived
	if w.kind() == "StatefulSet" && dividesReplicas(rb.Spec.Placement) {
		s.Receivable = added(s.Sources, s.Bound)
	}
	if cl := m.Labels[LabelCluster]; cl != "" {
		s.Cordoned = []string{cl}
	} else {
		// Made by hand, without the cordon detector's label: every source
		// counts as cordoned.
		s.Cordoned = m.Status.SourceClusters
	}
	var l clusterv1alpha1.ClusterList
	if err := c.Client.List(ctx, &l); err != nil {
		if meta.IsNoMatchError(err) {
			return s, nil // no Cluster API: nothing is concluded
		}
		return s, fmt.Errorf("list clusters: %w", err)
	}
	byName := map[string]*clusterv1alpha1.Cluster{}
	for i := range l.Items {
		byName[l.Items[i].Name] = &l.Items[i]
	}
	// Lifted only when every cordoned cluster is there and untainted: a
	// cluster that is gone (unjoined) leaves the binding instead.
	s.Lifted = len(s.Cordoned) > 0
	for _, name := range s.Cordoned {
		cl := byName[name]
		if cl == nil || cl.DeletionTimestamp != nil || taintedFor(cl, clusterv1alpha1.TaintClusterUnscheduler, corev1.TaintEffectNoSchedule) {
			s.Lifted = false
		}
	}
	s.ElsewhereKnown = true
	for _, cl := range l.Items {
		if !contains(s.Bound, cl.Name) && CanPlace(rb.Spec.Placement, &cl) {
			s.Elsewhere = append(s.Elsewhere, cl.Name)
		}
	}
	sort.Strings(s.Elsewhere)
	return s, nil
}

// dividesReplicas says whether a placement divides the replicas among its
// clusters (an evicted cluster's replicas go to the others).
func dividesReplicas(p *policyv1alpha1.Placement) bool {
	return p != nil && p.ReplicaScheduling != nil && p.ReplicaScheduling.ReplicaSchedulingType == policyv1alpha1.ReplicaSchedulingTypeDivided
}

// cordonOver ends a Cordon Migration whose move can no longer happen (see
// CordonEnd); ended is false while it still can.
func (r MigrationReconciler) cordonOver(ctx context.Context, mv *move) (ended bool, err error) {
	if mv.m.Spec.Trigger != v1alpha1.TriggerCordon {
		return false, nil
	}
	s, err := r.cordonState(ctx, mv.w, mv.m, mv.rb)
	if err != nil {
		return false, err
	}
	reason, msg := CordonEnd(s)
	if reason == "" {
		return false, nil
	}
	return true, r.noMove(ctx, mv, reason, msg)
}

// noMove ends a Cordon Migration whose move cannot or need not happen: the
// scheduling hold is lifted (a hold never outlives its move) and the
// Migration ends Failed, with condition Restored=False, the reason and an
// Event on the Migration and the workload. The armed plan stays: the
// policy keeps it current, and a later move the controller detects is
// restored from it.
//
// Why Failed: it is the phase this controller already gives a move that
// has nothing to move (NotScheduled, AlreadyThere), and with condition
// Restored=False it says exactly what happened: the Migration did not
// move the workload. Restored would claim a restore that never happened;
// FellBack means the destination started cold from its image (its message
// says "cold start", it fires a ColdStart Event and follows the policy's
// onRestoreImpossible, whose Hold would suspend scheduling for a move that
// does not exist), and here no destination started at all. A phase of its
// own (e.g. Cancelled) would be more precise but changes the API enum, the
// printed columns and the outcome values of stateshift_migrations_total.
// The Event is Normal for an uncordon (a person called the move off) and a
// Warning otherwise: the cordoned copy is (or can only be) dropped without
// being restored anywhere.
func (r MigrationReconciler) noMove(ctx context.Context, mv *move, reason, msg string) error {
	m, w := mv.m, mv.w
	if err := r.release(ctx, mv.rb, m.Name); err != nil {
		return err
	}
	if err := r.set(m, v1alpha1.MigrationFailed, msg); err != nil {
		return err
	}
	r.condition(m, v1alpha1.ConditionRestored, false, reason, msg)
	typ := corev1.EventTypeWarning
	if reason == ReasonCordonLifted {
		typ = corev1.EventTypeNormal
	}
	r.Recorder.Eventf(m, typ, reason, "%s", msg)
	r.Recorder.Eventf(w.obj, typ, reason, "Migration %s: %s", m.Name, msg)
	return nil
}
