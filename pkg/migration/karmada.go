package migration

import (
	"context"
	"fmt"
	"sort"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// workload is a protected workload template read from the Karmada API.
type workload struct {
	obj      client.Object
	u        *unstructured.Unstructured
	selector labels.Selector
}

func (w *workload) kind() string { return w.u.GetKind() }
func (w *workload) name() string { return w.u.GetName() }
func (w *workload) ns() string   { return w.u.GetNamespace() }
func (w *workload) label() string {
	return workloadLabel(w.kind(), w.name())
}

// getWorkload reads an apps/v1 StatefulSet or Deployment template.
func (c *Controller) getWorkload(ctx context.Context, ns, kind, name string) (*workload, error) {
	var obj client.Object
	var sel *metav1.LabelSelector
	switch kind {
	case "StatefulSet":
		s := &appsv1.StatefulSet{}
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return nil, err
		}
		obj, sel = s, s.Spec.Selector
	case "Deployment":
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
			return nil, err
		}
		obj, sel = d, d.Spec.Selector
	default:
		return nil, fmt.Errorf("kind %s is not supported (apps/v1 StatefulSet, Deployment)", kind)
	}
	return newWorkload(obj, kind, sel)
}

func newWorkload(obj client.Object, kind string, sel *metav1.LabelSelector) (*workload, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("apps/v1")
	u.SetKind(kind)
	if sel == nil {
		return nil, fmt.Errorf("%s %s/%s has no selector", kind, obj.GetNamespace(), obj.GetName())
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s selector: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return &workload{obj: obj, u: u, selector: s}, nil
}

// selectedWorkloads lists the templates a policy selects.
func (c *Controller) selectedWorkloads(ctx context.Context, p *v1alpha1.CheckpointPolicy) ([]*workload, error) {
	var out []*workload
	seen := map[string]bool{}
	for _, kind := range []string{"StatefulSet", "Deployment"} {
		var objs []client.Object
		var sels []*metav1.LabelSelector
		switch kind {
		case "StatefulSet":
			var l appsv1.StatefulSetList
			if err := c.Client.List(ctx, &l, client.InNamespace(p.Namespace)); err != nil {
				return nil, err
			}
			for i := range l.Items {
				objs, sels = append(objs, &l.Items[i]), append(sels, l.Items[i].Spec.Selector)
			}
		case "Deployment":
			var l appsv1.DeploymentList
			if err := c.Client.List(ctx, &l, client.InNamespace(p.Namespace)); err != nil {
				return nil, err
			}
			for i := range l.Items {
				objs, sels = append(objs, &l.Items[i]), append(sels, l.Items[i].Spec.Selector)
			}
		}
		for i, o := range objs {
			ok, err := PolicySelects(p, "apps/v1", kind, o.GetName(), o.GetLabels())
			if err != nil {
				return nil, err
			}
			if !ok || seen[kind+"/"+o.GetName()] || o.GetDeletionTimestamp() != nil {
				continue
			}
			seen[kind+"/"+o.GetName()] = true
			w, err := newWorkload(o, kind, sels[i])
			if err != nil {
				return nil, err
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// policyFor finds the CheckpointPolicy protecting a workload (the first by
// name when several select it).
func (c *Controller) policyFor(ctx context.Context, w *workload) (*v1alpha1.CheckpointPolicy, error) {
	var l v1alpha1.CheckpointPolicyList
	if err := c.Client.List(ctx, &l, client.InNamespace(w.ns())); err != nil {
		return nil, err
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	for i := range l.Items {
		ok, err := PolicySelects(&l.Items[i], "apps/v1", w.kind(), w.name(), w.u.GetLabels())
		if err != nil {
			return nil, err
		}
		if ok && l.Items[i].DeletionTimestamp == nil {
			return &l.Items[i], nil
		}
	}
	return nil, nil
}

func (c *Controller) binding(ctx context.Context, w *workload) (*workv1alpha2.ResourceBinding, error) {
	rb := &workv1alpha2.ResourceBinding{}
	err := c.Client.Get(ctx, types.NamespacedName{Namespace: w.ns(), Name: BindingName(w.kind(), w.name())}, rb)
	return rb, err
}

// unableClusters lists member clusters labelled stateshift.io/restore=false.
func (c *Controller) unableClusters(ctx context.Context) (map[string]bool, error) {
	var l clusterv1alpha1.ClusterList
	if err := c.Client.List(ctx, &l, client.MatchingLabels{LabelRestore: "false"}); err != nil {
		if meta.IsNoMatchError(err) {
			return map[string]bool{}, nil
		}
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	out := map[string]bool{}
	for _, cl := range l.Items {
		out[cl.Name] = true
	}
	return out, nil
}

// workloadCheckpoints lists the Checkpoints of a workload, by pod.
func (c *Controller) workloadCheckpoints(ctx context.Context, w *workload) (map[string][]v1alpha1.Checkpoint, error) {
	var l v1alpha1.CheckpointList
	if err := c.reader().List(ctx, &l, client.InNamespace(w.ns()), client.MatchingLabels{LabelWorkload: w.label()}); err != nil {
		return nil, fmt.Errorf("list checkpoints of %s: %w", w.label(), err)
	}
	out := map[string][]v1alpha1.Checkpoint{}
	for _, cp := range l.Items {
		pod := cp.Labels[LabelPod]
		out[pod] = append(out[pod], cp)
	}
	return out, nil
}

// createCheckpoint asks for a checkpoint of pod in cluster.
func (c *Controller) createCheckpoint(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, cluster, pod, migration string) (*v1alpha1.Checkpoint, error) {
	if err := c.ensurePropagation(ctx, w.ns(), cluster); err != nil {
		return nil, err
	}
	// Named from the checkpoint it follows: two reconciles of one round (a
	// policy event and a binding event together) derive the same name, and
	// the second Create finds the first's Checkpoint instead of a twin.
	prev, err := c.latestCheckpointName(ctx, w, pod)
	if err != nil {
		return nil, err
	}
	cp := &v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{
			Name:      checkpointName(pod, cluster, migration, prev),
			Namespace: w.ns(),
			Labels: map[string]string{
				LabelWorkload: w.label(), LabelCluster: cluster, LabelPolicy: p.Name, LabelPod: pod,
				LabelManagedBy: ManagedBy,
			},
			Annotations: map[string]string{AnnotationTemplateHash: TemplateHash(w.u), AnnotationTemplateImages: templateImagesJSON(w.u)},
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
	reason := "schedule"
	if migration != "" {
		cp.Labels[LabelMigration] = migration
		reason = "migration"
	}
	if err := c.Client.Create(ctx, cp); err != nil {
		if apierrors.IsAlreadyExists(err) {
			existing := &v1alpha1.Checkpoint{}
			if err := c.reader().Get(ctx, client.ObjectKeyFromObject(cp), existing); err != nil {
				return nil, fmt.Errorf("checkpoint %s of pod %s/%s: %w", cp.Name, w.ns(), pod, err)
			}
			return existing, nil
		}
		return nil, fmt.Errorf("create checkpoint of pod %s/%s in %s: %w", w.ns(), pod, cluster, err)
	}
	checkpointsCreated.WithLabelValues(reason).Inc()
	return cp, nil
}

// latestCheckpointName is the newest Checkpoint of the pod, read uncached.
func (c *Controller) latestCheckpointName(ctx context.Context, w *workload, pod string) (string, error) {
	var l v1alpha1.CheckpointList
	if err := c.reader().List(ctx, &l, client.InNamespace(w.ns()), client.MatchingLabels{LabelWorkload: w.label(), LabelPod: pod}); err != nil {
		return "", err
	}
	last := newest(l.Items)
	if last == nil {
		return "", nil
	}
	return last.Name, nil
}

// ensurePropagation makes sure the namespace has the PropagationPolicy
// that carries Checkpoints labelled for cluster to that cluster only.
func (c *Controller) ensurePropagation(ctx context.Context, ns, cluster string) error {
	want := &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: propagationPolicyName(cluster), Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{
				APIVersion:    v1alpha1.GroupVersion.String(),
				Kind:          v1alpha1.CheckpointKind,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelCluster: cluster}},
			}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{cluster}},
				// A cordon's fresh checkpoint must reach the cordoned
				// cluster: without this toleration Karmada's scheduler
				// (TaintToleration filter) never places the Checkpoint
				// there, and the Cordon Migration waits forever.
				ClusterTolerations: []corev1.Toleration{{
					Key: clusterv1alpha1.TaintClusterUnscheduler, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
				}},
			},
		},
	}
	got := &policyv1alpha1.PropagationPolicy{}
	err := c.Client.Get(ctx, client.ObjectKeyFromObject(want), got)
	if apierrors.IsNotFound(err) {
		if err := c.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create PropagationPolicy %s/%s: %w", ns, want.Name, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(got.Spec.Placement.ClusterTolerations) == 0 { // made by an earlier version
		got.Spec.Placement.ClusterTolerations = want.Spec.Placement.ClusterTolerations
		if err := c.Client.Update(ctx, got); err != nil {
			return fmt.Errorf("update PropagationPolicy %s/%s: %w", ns, want.Name, err)
		}
	}
	return nil
}

// armedPolicy reads the workload's restore OverridePolicy; nil when none.
func (c *Controller) armedPolicy(ctx context.Context, w *workload) (*policyv1alpha1.OverridePolicy, error) {
	op := &policyv1alpha1.OverridePolicy{}
	err := c.reader().Get(ctx, types.NamespacedName{Namespace: w.ns(), Name: restore.PolicyName(w.u)}, op)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return op, err
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

// arm creates or updates the workload's restore OverridePolicy; with no
// plan (or nothing left to target) it withdraws it.
func (c *Controller) arm(ctx context.Context, owner *v1alpha1.CheckpointPolicy, w *workload, plan *restore.Plan, exclude []string) error {
	current, err := c.armedPolicy(ctx, w)
	if err != nil {
		return err
	}
	if plan == nil || len(exclude) == 0 {
		return c.withdraw(ctx, current)
	}
	want, err := restore.OverridePolicy(w.u, *plan, exclude)
	if err != nil {
		return err
	}
	if owner != nil {
		want.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "CheckpointPolicy", Name: owner.Name, UID: owner.UID,
		}}
	}
	if current == nil {
		if err := c.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("arm restore of %s/%s: %w", w.ns(), w.label(), err)
		}
		return nil
	}
	if newer, err := c.armedIsNewer(ctx, w, current, plan.Checkpoint); err != nil {
		return err
	} else if newer {
		// Two reconcilers arm the same plan: a policy round that read the
		// checkpoints before a Migration's fresh one was verified must not
		// put the older checkpoint back (Karmada would roll the
		// destination twice, first to the older state). Keep the armed
		// checkpoint; only the exclusions follow the binding. The Update
		// below carries current's resourceVersion, so a concurrent re-arm
		// makes it conflict and this round is retried on fresh data.
		want.Annotations = current.Annotations
		want.Spec.OverrideRules = current.DeepCopy().Spec.OverrideRules
		for i := range want.Spec.OverrideRules {
			if want.Spec.OverrideRules[i].TargetCluster != nil {
				want.Spec.OverrideRules[i].TargetCluster.ExcludeClusters = exclude
			}
		}
	}
	if same, err := equalPolicy(current, want); err != nil || same {
		return err
	}
	current.Labels, current.Annotations, current.Spec = want.Labels, want.Annotations, want.Spec
	if owner != nil {
		current.OwnerReferences = want.OwnerReferences
	}
	if err := c.Client.Update(ctx, current); err != nil {
		return fmt.Errorf("re-arm restore of %s/%s: %w", w.ns(), w.label(), err)
	}
	return nil
}

// armedIsNewer says whether the armed plan restores a verified checkpoint
// of w that completed after candidate (so arming candidate would go back
// in time).
func (c *Controller) armedIsNewer(ctx context.Context, w *workload, current *policyv1alpha1.OverridePolicy, candidate string) (bool, error) {
	armed := current.Annotations[restoreKey]
	if armed == "" || armed == candidate {
		return false, nil
	}
	get := func(name string) (*v1alpha1.Checkpoint, error) {
		cp := &v1alpha1.Checkpoint{}
		err := c.reader().Get(ctx, types.NamespacedName{Namespace: w.ns(), Name: name}, cp)
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

func (c *Controller) withdraw(ctx context.Context, op *policyv1alpha1.OverridePolicy) error {
	if op == nil {
		return nil
	}
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

// hold suspends the binding's scheduling so a reschedule (a
// WorkloadRebalancer, a placement change) cannot drop the source before
// the fresh checkpoint is verified. Karmada evidence: the binding
// controller deletes the Works of clusters that left rb.spec.clusters in
// removeOrphanWorks BEFORE it looks at suspension.dispatching, so
// dispatching does not protect the source; the scheduler ignores a
// binding whose spec.suspension.scheduling is true (event_handler.go
// resourceBindingEventFilter), so its clusters cannot change meanwhile.
func (c *Controller) hold(ctx context.Context, rb *workv1alpha2.ResourceBinding, by string) error {
	patch := client.MergeFrom(rb.DeepCopy())
	if rb.Spec.Suspension == nil {
		rb.Spec.Suspension = &workv1alpha2.Suspension{}
	}
	if ptr.Deref(rb.Spec.Suspension.Scheduling, false) && rb.Annotations[AnnotationScheduling] == "" {
		return nil // someone else's suspension: leave it alone
	}
	rb.Spec.Suspension.Scheduling = ptr.To(true)
	if rb.Annotations == nil {
		rb.Annotations = map[string]string{}
	}
	rb.Annotations[AnnotationScheduling] = by
	if err := c.Client.Patch(ctx, rb, patch); err != nil {
		return fmt.Errorf("suspend scheduling of binding %s/%s: %w", rb.Namespace, rb.Name, err)
	}
	return nil
}

// release lifts a hold set by by.
func (c *Controller) release(ctx context.Context, rb *workv1alpha2.ResourceBinding, by string) error {
	if rb.Annotations[AnnotationScheduling] != by {
		return nil
	}
	patch := client.MergeFrom(rb.DeepCopy())
	delete(rb.Annotations, AnnotationScheduling)
	if rb.Spec.Suspension != nil {
		rb.Spec.Suspension.Scheduling = nil
		if rb.Spec.Suspension.Dispatching == nil && rb.Spec.Suspension.DispatchingOnClusters == nil {
			rb.Spec.Suspension = nil
		}
	}
	if err := c.Client.Patch(ctx, rb, patch); err != nil {
		return fmt.Errorf("resume scheduling of binding %s/%s: %w", rb.Namespace, rb.Name, err)
	}
	return nil
}

// moveTo places the binding on dest only and asks for a fresh schedule.
// Karmada has no "move this workload" call: a PropagationPolicy edit would
// move every workload it selects, and a higher-priority policy needs the
// alpha PropagationPolicyPreemption gate. The binding's placement is
// copied from the policy by the resource detector only when the template
// or the policy changes (detector.go ApplyPolicy), so the move holds until
// then; the README tells operators to update their policy for a
// permanent move.
func (c *Controller) moveTo(ctx context.Context, rb *workv1alpha2.ResourceBinding, dest string, now time.Time) error {
	patch := client.MergeFrom(rb.DeepCopy())
	if rb.Spec.Placement == nil {
		rb.Spec.Placement = &policyv1alpha1.Placement{}
	}
	rb.Spec.Placement.ClusterAffinity = &policyv1alpha1.ClusterAffinity{ClusterNames: []string{dest}}
	rb.Spec.Placement.ClusterAffinities = nil
	t := metav1.NewTime(now)
	rb.Spec.RescheduleTriggeredAt = &t
	if err := c.Client.Patch(ctx, rb, patch); err != nil {
		return fmt.Errorf("move binding %s/%s to %s: %w", rb.Namespace, rb.Name, dest, err)
	}
	return nil
}

func isTerminal(p v1alpha1.MigrationPhase) bool {
	return p == v1alpha1.MigrationRestored || p == v1alpha1.MigrationFellBack || p == v1alpha1.MigrationFailed
}

// activeMigration finds an unfinished Migration of the workload.
func (c *Controller) activeMigration(ctx context.Context, w *workload) (*v1alpha1.Migration, error) {
	var l v1alpha1.MigrationList
	if err := c.reader().List(ctx, &l, client.InNamespace(w.ns())); err != nil {
		return nil, err
	}
	for i := range l.Items {
		m := &l.Items[i]
		if m.Spec.WorkloadRef.Kind == w.kind() && m.Spec.WorkloadRef.Name == w.name() && !isTerminal(m.Status.Phase) {
			return m, nil
		}
	}
	return nil, nil
}

func taintedFor(cl *clusterv1alpha1.Cluster, key string, effect corev1.TaintEffect) bool {
	for _, t := range cl.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}
