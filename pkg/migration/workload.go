package migration

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// workload is a protected workload template read from the Karmada API.
type workload struct {
	// obj is read, never changed: templates() lists it from the cache
	// without a copy.
	obj      client.Object
	kindName string
	selector labels.Selector
	// templateHash and templateImages (TemplateHash, templateImagesJSON)
	// are computed once: most reconciles need them, few the whole template.
	templateHash, templateImages string
}

func (w *workload) kind() string { return w.kindName }

func (w *workload) name() string { return w.obj.GetName() }

func (w *workload) ns() string { return w.obj.GetNamespace() }

// template is the object as an unstructured apps/v1 template, converted
// at each call and not kept: a policy's reconcile holds all its workloads
// at once, and with each one's unstructured copy kept those copies were a
// fifth of the controller's live heap at 1,000 workloads.
func (w *workload) template() (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w.obj)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", w.kindName, w.ns(), w.name(), err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("apps/v1")
	u.SetKind(w.kindName)
	return u, nil
}

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
	w := &workload{obj: obj, kindName: kind}
	var ok bool
	if w.templateHash, w.templateImages, ok = digests.get(kind, obj); !ok {
		u, err := w.template()
		if err != nil {
			return nil, err
		}
		w.templateHash, w.templateImages = TemplateHash(u), templateImagesJSON(u)
		digests.put(kind, obj, w.templateHash, w.templateImages)
	}
	if sel == nil {
		return nil, fmt.Errorf("%s %s/%s has no selector", kind, obj.GetNamespace(), obj.GetName())
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s selector: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	w.selector = s
	return w, nil
}

// templates lists the StatefulSet and Deployment templates of a namespace
// that keep accepts.
func (c *Controller) templates(ctx context.Context, ns string, keep func(kind string, o client.Object) (bool, error)) ([]*workload, error) {
	// The cache's objects, not copies (a namespace's templates are read
	// by several policy reconciles at once): workload.obj is read-only.
	var sts appsv1.StatefulSetList
	if err := c.Client.List(ctx, &sts, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list StatefulSets in %s: %w", ns, err)
	}
	var deps appsv1.DeploymentList
	if err := c.Client.List(ctx, &deps, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list Deployments in %s: %w", ns, err)
	}
	var out []*workload
	add := func(o client.Object, kind string, sel *metav1.LabelSelector) error {
		if ok, err := keep(kind, o); !ok || err != nil || o.GetDeletionTimestamp() != nil {
			return err
		}
		w, err := newWorkload(o, kind, sel)
		out = append(out, w)
		return err
	}
	for i := range sts.Items {
		if err := add(&sts.Items[i], "StatefulSet", sts.Items[i].Spec.Selector); err != nil {
			return nil, err
		}
	}
	for i := range deps.Items {
		if err := add(&deps.Items[i], "Deployment", deps.Items[i].Spec.Selector); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// selectedWorkloads lists the templates a policy selects.
func (c *Controller) selectedWorkloads(ctx context.Context, p *v1alpha1.CheckpointPolicy) ([]*workload, error) {
	return c.templates(ctx, p.Namespace, func(kind string, o client.Object) (bool, error) {
		return PolicySelects(p, "apps/v1", kind, o.GetName(), o.GetLabels())
	})
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
		ok, err := PolicySelects(&l.Items[i], "apps/v1", w.kind(), w.name(), w.obj.GetLabels())
		if err != nil {
			return nil, err
		}
		if ok && l.Items[i].DeletionTimestamp == nil {
			return &l.Items[i], nil
		}
	}
	return nil, nil
}

// existingWorkloads are the workloadLabel of every template in ns not
// being deleted: what the Checkpoints and Migrations of deleted workloads
// are told apart by.
func (c *Controller) existingWorkloads(ctx context.Context, ns string) (map[string]bool, error) {
	templates, err := c.templates(ctx, ns, func(string, client.Object) (bool, error) { return true, nil })
	if err != nil {
		return nil, err
	}
	exists := make(map[string]bool, len(templates))
	for _, w := range templates {
		exists[w.label()] = true
	}
	return exists, nil
}
