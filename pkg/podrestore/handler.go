package podrestore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateshift/stateshift/pkg/restore"
)

// Path is where the webhook is served.
const Path = "/mutate-pods"

// Handler is the admission handler. Reader reads workload metadata only;
// give it an uncached reader (the manager's APIReader): a cache would
// watch every StatefulSet, ReplicaSet and Deployment of the cluster for a
// webhook called only for restored pods.
type Handler struct {
	Reader client.Reader
	// Images reads the manifests of the checkpoint images a pod would
	// restore, to check they come from the pod's namespace.
	Images ImageReader
}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return admission.Allowed("only pod creation is mutated")
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		decisions.WithLabelValues("error").Inc()
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	if pod.Name == "" {
		pod.Name = req.Name
	}
	ns := req.Namespace
	if _, planned := pod.Annotations[restore.AnnotationRestoredFrom]; !planned {
		decisions.WithLabelValues(string(Unchanged)).Inc()
		return admission.Allowed("no restore planned")
	}
	owner, err := h.owner(ctx, ns, pod)
	if err != nil {
		decisions.WithLabelValues("error").Inc()
		// Refused, not allowed as is: the workload controller retries, and
		// a pod never starts from a checkpoint that may not be its own.
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("pod %s/%s: reading its workload: %w", ns, pod.Name, err))
	}
	d, err := Decide(pod, owner)
	if err != nil {
		decisions.WithLabelValues("error").Inc()
		return admission.Errored(http.StatusUnprocessableEntity, fmt.Errorf("pod %s/%s: %w", ns, pod.Name, err))
	}
	if len(d.Restores) > 0 {
		if h.Images == nil {
			decisions.WithLabelValues("error").Inc()
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("pod %s/%s: the webhook cannot read checkpoint images to check their namespace", ns, pod.Name))
		}
		denied, err := checkOrigins(ctx, h.Images, ns, d.Restores)
		if err != nil {
			decisions.WithLabelValues("error").Inc()
			return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("pod %s/%s: %w", ns, pod.Name, err))
		}
		if denied != nil {
			decisions.WithLabelValues("refused").Inc()
			return admission.Denied(fmt.Sprintf("pod %s/%s: %v", ns, pod.Name, denied))
		}
	}
	decisions.WithLabelValues(string(d.Outcome)).Inc()
	if d.Outcome == Unchanged {
		return admission.Allowed(d.Reason)
	}
	mutated, err := Apply(pod, d)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	raw, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	klog.FromContext(ctx).V(2).Info("Pod restore decided", "pod", klog.KRef(ns, pod.Name), "outcome", d.Outcome, "reason", d.Reason)
	resp := admission.PatchResponseFromRaw(req.Object.Raw, raw)
	resp.Result = &metav1.Status{Message: d.Reason}
	return resp
}

// owner finds the workload behind the pod's controller: a StatefulSet, or
// a ReplicaSet's Deployment (restore-completed is on the Deployment, as
// Karmada writes it). nil when there is none or it is gone.
func (h *Handler) owner(ctx context.Context, ns string, pod *corev1.Pod) (*Owner, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != "apps" {
		return nil, nil
	}
	switch ref.Kind {
	case "StatefulSet", "Deployment":
		return h.metadata(ctx, ns, ref.Kind, ref.Name)
	case "ReplicaSet":
		rs, err := h.get(ctx, ns, "ReplicaSet", ref.Name)
		if rs == nil || err != nil {
			return nil, err
		}
		if up := metav1.GetControllerOf(rs); up != nil && up.Kind == "Deployment" {
			return h.metadata(ctx, ns, "Deployment", up.Name)
		}
		return &Owner{Kind: "ReplicaSet", Name: rs.Name, Annotations: rs.Annotations}, nil
	}
	return nil, nil
}

func (h *Handler) metadata(ctx context.Context, ns, kind, name string) (*Owner, error) {
	m, err := h.get(ctx, ns, kind, name)
	if m == nil || err != nil {
		return nil, err
	}
	return &Owner{Kind: kind, Name: name, Annotations: m.Annotations}, nil
}

// get reads only the object's metadata (RBAC: get on the kind).
func (h *Handler) get(ctx context.Context, ns, kind, name string) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind})
	if err := h.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
	}
	return m, nil
}
