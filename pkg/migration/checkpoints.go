package migration

import (
	"context"
	"fmt"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// checkpointWorkloadIndex indexes the cached Checkpoints by their workload
// label: the policies' controllers list a workload's Checkpoints for each
// workload at each reconcile, and a label selector scans every Checkpoint
// of the namespace (at 1,000 workloads, a quarter of the controller's CPU).
const checkpointWorkloadIndex = "stateshift.io/workload"

func indexCheckpointWorkload(o client.Object) []string {
	if w := o.GetLabels()[LabelWorkload]; w != "" {
		return []string{w}
	}
	return nil
}

// listWorkloadCheckpoints lists the Checkpoints of a workload from the
// cache. Every policy controller reads them for every workload on every
// reconcile: uncached, that was a list request per workload per event.
// A cache a moment behind is safe: a Checkpoint's name follows from the
// one before it, so a create the cache has not seen yet fails with
// AlreadyExists and finds it (createCheckpoint), and each Checkpoint
// that settles requeues its policy.
func (c *Controller) listWorkloadCheckpoints(ctx context.Context, w *workload) ([]v1alpha1.Checkpoint, error) {
	var l v1alpha1.CheckpointList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns()), client.MatchingFields{checkpointWorkloadIndex: w.label()}); err != nil {
		return nil, fmt.Errorf("list checkpoints of %s: %w", w.label(), err)
	}
	// One being deleted (its images going) is no longer a checkpoint to use.
	return filterCheckpoints(l.Items, func(c *v1alpha1.Checkpoint) bool { return c.DeletionTimestamp == nil }), nil
}

// workloadCheckpointsView is listWorkloadCheckpoints without copies:
// READ ONLY (the items share their maps and slices with the cache). Move
// detection and the restore plan read every workload's Checkpoints at
// every policy reconcile, and copying them was a seventh of the
// controller's CPU in a round of 1,000 workloads.
func (c *Controller) workloadCheckpointsView(ctx context.Context, w *workload) ([]v1alpha1.Checkpoint, error) {
	var l v1alpha1.CheckpointList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns()), client.MatchingFields{checkpointWorkloadIndex: w.label()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list checkpoints of %s: %w", w.label(), err)
	}
	return filterCheckpoints(l.Items, func(c *v1alpha1.Checkpoint) bool { return c.DeletionTimestamp == nil }), nil
}

// migrationCheckpoints are the fresh Checkpoints taken for Migration m.
func (c *Controller) migrationCheckpoints(ctx context.Context, m *v1alpha1.Migration) ([]v1alpha1.Checkpoint, error) {
	var l v1alpha1.CheckpointList
	if err := c.reader().List(ctx, &l, client.InNamespace(m.Namespace), client.MatchingLabels{LabelMigration: m.Name}); err != nil {
		return nil, fmt.Errorf("list checkpoints of Migration %s: %w", m.Name, err)
	}
	return l.Items, nil
}

// createCheckpoint asks for a checkpoint of pod in cluster.
func (c *Controller) createCheckpoint(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, cluster string, running *corev1.Pod, migration string) (*v1alpha1.Checkpoint, error) {
	pod := running.Name
	if err := c.checkRepositoryOnce(ctx, p); err != nil {
		return nil, err
	}
	var pp *policyv1alpha1.PropagationPolicy
	if !c.deliversByProxy() {
		var err error
		if pp, err = c.ensurePropagation(ctx, w.ns(), cluster); err != nil {
			return nil, err
		}
	}
	// Named from the checkpoint it follows: two reconciles of one round (a
	// policy event and a binding event together) derive the same name, and
	// the second Create finds the first's Checkpoint, unfinished, instead
	// of a twin. A finished one of that name is an older checkpoint (the
	// newest is ambiguous when two were created in the same second): the
	// next name is derived from it.
	prev, err := c.latestCheckpointName(ctx, w, pod)
	if err != nil {
		return nil, err
	}
	for range 5 {
		cp := newCheckpoint(p, w, cluster, pod, migration, checkpointName(pod, cluster, migration, prev))
		if running.Spec.NodeName != "" {
			cp.Labels[v1alpha1.LabelNode] = running.Spec.NodeName
		}
		if c.deliversByProxy() {
			// The checkpointdelivery controller writes its member's copy;
			// the label keeps stateshift's PropagationPolicies (of an
			// earlier propagation delivery) from forwarding it too.
			cp.Labels[LabelDelivery] = DeliveryProxy
		}
		preclaim(cp, pp)
		err := c.Client.Create(ctx, cp)
		if err == nil {
			checkpointsCreated.WithLabelValues(map[bool]string{true: "migration", false: "schedule"}[migration != ""]).Inc()
			return cp, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create checkpoint of pod %s/%s in %s: %w", w.ns(), pod, cluster, err)
		}
		existing := &v1alpha1.Checkpoint{}
		if err := c.reader().Get(ctx, client.ObjectKeyFromObject(cp), existing); err != nil {
			return nil, fmt.Errorf("checkpoint %s of pod %s/%s: %w", cp.Name, w.ns(), pod, err)
		}
		if !existing.IsFinished() && existing.DeletionTimestamp == nil {
			return existing, nil
		}
		prev = existing.Name
	}
	return nil, fmt.Errorf("create checkpoint of pod %s/%s in %s: no free name after %s", w.ns(), pod, cluster, prev)
}

// newCheckpoint is the Checkpoint of pod in cluster the policy asks for.
func newCheckpoint(p *v1alpha1.CheckpointPolicy, w *workload, cluster, pod, migration, name string) *v1alpha1.Checkpoint {
	cp := &v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: w.ns(),
			Labels: map[string]string{
				LabelWorkload: w.label(), LabelCluster: cluster, LabelPolicy: p.Name, LabelPod: pod,
				LabelManagedBy: ManagedBy,
			},
			Annotations: map[string]string{AnnotationTemplateHash: w.templateHash, AnnotationTemplateImages: w.templateImages},
			// Owned by the policy: deleting it deletes its Checkpoints, and
			// the finalizer their images first.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "CheckpointPolicy", Name: p.Name, UID: p.UID}},
			Finalizers:      []string{FinalizerImages},
		},
		Spec: v1alpha1.CheckpointSpec{
			PodName:              pod,
			Containers:           p.Spec.Containers,
			Repository:           p.Spec.Repository,
			CredentialsSecretRef: p.Spec.CredentialsSecretRef,
			Builder:              p.Spec.Builder,
			Compression:          p.Spec.Compression,
		},
	}
	if migration != "" {
		cp.Labels[LabelMigration] = migration
	}
	return cp
}

// latestCheckpointName is the newest Checkpoint of the pod, read uncached.
//
// From the cache: a Checkpoint created so recently that the cache lacks it
// makes the derived name its own, and Create's AlreadyExists answer leads
// createCheckpoint to it (unfinished: it is the one to use), so a stale
// cache costs a request, never a duplicate. A live list here was a request
// per Checkpoint.
func (c *Controller) latestCheckpointName(ctx context.Context, w *workload, pod string) (string, error) {
	var l v1alpha1.CheckpointList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns()), client.MatchingFields{checkpointWorkloadIndex: w.label()}, client.MatchingLabels{LabelPod: pod}); err != nil {
		return "", err
	}
	last := newest(l.Items)
	if last == nil {
		return "", nil
	}
	return last.Name, nil
}

// existingPropagation reads the PropagationPolicy want names; when there
// is none it creates want and returns nil (nothing to compare: it is as
// wanted). An AlreadyExists answer means another round created it: that
// round compared it too.
func (c *Controller) existingPropagation(ctx context.Context, want *policyv1alpha1.PropagationPolicy) (*policyv1alpha1.PropagationPolicy, error) {
	got := &policyv1alpha1.PropagationPolicy{}
	err := c.Client.Get(ctx, client.ObjectKeyFromObject(want), got)
	if apierrors.IsNotFound(err) {
		if err := c.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create PropagationPolicy %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return got, nil
}

// ensurePropagation makes sure the namespace has the PropagationPolicy
// that carries Checkpoints labelled for cluster to that cluster only, and
// returns it as stored (nil when it was only now created).
func (c *Controller) ensurePropagation(ctx context.Context, ns, cluster string) (*policyv1alpha1.PropagationPolicy, error) {
	want := checkpointPropagation(ns, cluster)
	got, err := c.existingPropagation(ctx, want)
	if err != nil || got == nil {
		return nil, err
	}
	if stalePropagation(got, want) { // made by an earlier version
		got.Spec.Placement.ClusterTolerations = want.Spec.Placement.ClusterTolerations
		got.Spec.ResourceSelectors = want.Spec.ResourceSelectors
		got.Spec.SchedulerName = want.Spec.SchedulerName
		if err := c.Client.Update(ctx, got); err != nil {
			return nil, fmt.Errorf("update PropagationPolicy %s/%s: %w", ns, want.Name, err)
		}
	}
	return got, nil
}

// preclaim writes on a new Checkpoint the claim Karmada's detector would
// otherwise add with an update (ClaimPolicyForObject: the policy's
// permanent ID label, its namespace and name annotations): one write less
// in the Karmada API per Checkpoint. Without a policy Karmada has labelled
// yet, the claim is left to Karmada.
func preclaim(cp *v1alpha1.Checkpoint, pp *policyv1alpha1.PropagationPolicy) {
	if pp == nil || pp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel] == "" {
		return
	}
	cp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel] = pp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel]
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[policyv1alpha1.PropagationPolicyNamespaceAnnotation] = pp.Namespace
	cp.Annotations[policyv1alpha1.PropagationPolicyNameAnnotation] = pp.Name
}

// checkpointPropagation is the PropagationPolicy of namespace ns that
// carries Checkpoints labelled for cluster to that cluster only.
func checkpointPropagation(ns, cluster string) *policyv1alpha1.PropagationPolicy {
	return &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: propagationPolicyName(cluster), Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{
				APIVersion: v1alpha1.GroupVersion.String(),
				Kind:       v1alpha1.CheckpointKind,
				// karmada-webhook sets a namespaced policy's own
				// namespace here: said as it stores it, so that the
				// comparison with what is stored holds.
				Namespace: ns,
				// Not those the checkpointdelivery controller delivers
				// (--checkpoint-delivery=proxy): one writer per member copy.
				LabelSelector: &metav1.LabelSelector{MatchLabels: ownCheckpoints(cluster),
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelDelivery, Operator: metav1.LabelSelectorOpDoesNotExist}}},
			}},
			// Placed by the checkpointplacement controller, not by
			// Karmada's scheduler (see CheckpointSchedulerName).
			SchedulerName: CheckpointSchedulerName,
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{cluster}},
				// A cordon's fresh checkpoint must reach the cordoned
				// cluster: without this toleration Karmada's scheduler
				// (TaintToleration filter) never places the Checkpoint
				// there, and the Cordon Migration waits forever.
				//
				// NoExecute is tolerated for good so that Karmada's taint
				// manager never evicts a Checkpoint: it cannot move (its
				// pod is on that cluster), and Karmada evicts a lost
				// member's bindings at --resource-eviction-rate, where
				// hundreds of Checkpoints would queue ahead of the
				// workloads the loss moves. No new Checkpoint is placed
				// on a NoExecute cluster (checkpointCluster).
				ClusterTolerations: []corev1.Toleration{{
					Key: clusterv1alpha1.TaintClusterUnscheduler, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
				}, {
					Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
				}},
			},
		},
	}
}
