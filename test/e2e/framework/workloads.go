package framework

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha1 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util/names"
)

// TestImage is what test pods run. The node simulator starts images of
// registries it does not pull from cold, without any network.
const TestImage = "docker.io/library/busybox:1.36"

// Namespace creates a namespace with a random suffix in the Karmada API
// (Karmada propagates it to every member) and deletes it when the test ends,
// waiting until it is gone from Karmada and the members.
func (e *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(5)}}
	if err := e.Karmada.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.Karmada.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
			return
		}
		clients := map[string]client.Client{"karmada": e.Karmada}
		for m, c := range e.Members {
			clients[m] = c
		}
		for name, c := range clients {
			for {
				err := c.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
				if apierrors.IsNotFound(err) {
					break
				}
				if ctx.Err() != nil {
					t.Errorf("namespace %s still exists in %s after 2m", ns.Name, name)
					break
				}
				time.Sleep(PollInterval)
			}
		}
	})
	return ns.Name
}

func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   TestImage,
				Command: []string{"sleep", "infinity"},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: *resourceQuantity("10m"), corev1.ResourceMemory: *resourceQuantity("16Mi"),
				}},
			}},
		},
	}
}

// Deployment is a Deployment of `replicas` test pods labelled app=name.
func Deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name),
		},
	}
}

// StatefulSet is a StatefulSet of `replicas` test pods labelled app=name.
func StatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:    podTemplate(name),
		},
	}
}

// PropagationPolicy propagates the given workloads to the given clusters.
// With more than one cluster it divides replicas and aggregates them, so a
// workload with few replicas lands in exactly one of the allowed clusters
// and is not added to a cluster that appears later (as Duplicated would).
func PropagationPolicy(ns, name string, clusters []string, workloads ...client.Object) *policyv1alpha1.PropagationPolicy {
	pp := &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: policyv1alpha1.PropagationSpec{
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: clusters},
				ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
					ReplicaSchedulingType:     policyv1alpha1.ReplicaSchedulingTypeDivided,
					ReplicaDivisionPreference: policyv1alpha1.ReplicaDivisionPreferenceAggregated,
				},
			},
		},
	}
	for _, w := range workloads {
		gvk := w.GetObjectKind().GroupVersionKind()
		pp.Spec.ResourceSelectors = append(pp.Spec.ResourceSelectors, policyv1alpha1.ResourceSelector{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: w.GetName(),
		})
	}
	return pp
}

// Create creates objects in the Karmada API, failing the test on error.
func (e *Env) Create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := e.Karmada.Create(t.Context(), o); err != nil {
			t.Fatalf("create %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// Binding returns the ResourceBinding Karmada made for a workload.
func (e *Env) Binding(ctx context.Context, ns, kind, name string) (*workv1alpha2.ResourceBinding, error) {
	rb := &workv1alpha2.ResourceBinding{}
	err := e.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: names.GenerateBindingName(kind, name)}, rb)
	return rb, err
}

// BoundClusters lists the clusters in a binding's spec.clusters, sorted.
func BoundClusters(rb *workv1alpha2.ResourceBinding) []string {
	var cs []string
	for _, c := range rb.Spec.Clusters {
		cs = append(cs, c.Name)
	}
	sort.Strings(cs)
	return cs
}

// Work returns the Work Karmada wrote for a workload in one cluster's
// execution namespace (karmada-es-<cluster>).
func (e *Env) Work(ctx context.Context, cluster, ns, kind, name string) (*workv1alpha1.Work, error) {
	w := &workv1alpha1.Work{}
	err := e.Karmada.Get(ctx, client.ObjectKey{
		Namespace: names.GenerateExecutionSpaceName(cluster),
		Name:      names.GenerateWorkName(kind, name, ns),
	}, w)
	return w, err
}

// NodeNames lists a member cluster's nodes.
func (e *Env) NodeNames(ctx context.Context, cluster string) ([]string, error) {
	var nodes corev1.NodeList
	if err := e.Members[cluster].List(ctx, &nodes); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes.Items {
		out = append(out, n.Name)
	}
	return out, nil
}

// PodsRunning checks that a member runs exactly `want` pods labelled app=app
// in ns, each Running and Ready on one of that member's own nodes.
func (e *Env) PodsRunning(cluster, ns, app string, want int) Check {
	return func(ctx context.Context) (bool, string, error) {
		nodes, err := e.NodeNames(ctx, cluster)
		if err != nil {
			return false, "", err
		}
		var pods corev1.PodList
		if err := e.Members[cluster].List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
			return false, "", err
		}
		var seen []string
		running := 0
		for _, p := range pods.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			seen = append(seen, fmt.Sprintf("%s %s ready=%t node=%q", p.Name, p.Status.Phase, ready, p.Spec.NodeName))
			if p.Status.Phase == corev1.PodRunning && ready && p.DeletionTimestamp == nil && slices.Contains(nodes, p.Spec.NodeName) {
				running++
			}
		}
		saw := fmt.Sprintf("%s nodes %v; pods: [%s]", cluster, nodes, strings.Join(seen, "; "))
		return running == want && len(pods.Items) == want, saw, nil
	}
}

// NoPods checks that a member has no pods labelled app=app in ns.
func (e *Env) NoPods(cluster, ns, app string) Check {
	return func(ctx context.Context) (bool, string, error) {
		var pods corev1.PodList
		if err := e.Members[cluster].List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
			return false, "", err
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods on %s", len(pods.Items), cluster), nil
	}
}

// Cluster returns a Karmada Cluster object.
func (e *Env) Cluster(ctx context.Context, name string) (*clusterv1alpha1.Cluster, error) {
	c := &clusterv1alpha1.Cluster{}
	err := e.Karmada.Get(ctx, client.ObjectKey{Name: name}, c)
	return c, err
}

// ClusterReady checks a Cluster's Ready condition.
func (e *Env) ClusterReady(name string) Check {
	return func(ctx context.Context) (bool, string, error) {
		c, err := e.Cluster(ctx, name)
		if err != nil {
			return false, "", err
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == clusterv1alpha1.ClusterConditionReady {
				return cond.Status == metav1.ConditionTrue, fmt.Sprintf("%s Ready=%s (%s)", name, cond.Status, cond.Reason), nil
			}
		}
		return false, name + " has no Ready condition", nil
	}
}

// TaintStrings renders a Cluster's taints as key[=value]:Effect, sorted.
func TaintStrings(c *clusterv1alpha1.Cluster) []string {
	var out []string
	for _, t := range c.Spec.Taints {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		out = append(out, s+":"+string(t.Effect))
	}
	sort.Strings(out)
	return out
}

func resourceQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}
