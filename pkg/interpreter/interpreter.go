package interpreter

import (
	"context"
	"fmt"
	"net/http"
	"time"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Interpreter answers Karmada's interpreter requests for the served kinds.
// It implements Karmada's webhook.Handler.
type Interpreter struct {
	decoder *webhook.Decoder
}

var _ webhook.Handler = &Interpreter{}
var _ webhook.DecoderInjector = &Interpreter{}

// InjectDecoder is called by webhook.NewWebhook.
func (i *Interpreter) InjectDecoder(d *webhook.Decoder) { i.decoder = d }

// Handle runs one operation; every failure is an unsuccessful response
// with a code and a message, never a panic.
func (i *Interpreter) Handle(ctx context.Context, req webhook.Request) (resp webhook.Response) {
	start := time.Now()
	markHandled(ctx)
	defer func() {
		if r := recover(); r != nil {
			resp = webhook.Errored(http.StatusInternalServerError, fmt.Errorf("%s: internal error: %v", req.Operation, r))
		}
		observe(req, resp, time.Since(start))
	}()
	return i.handle(req)
}

func (i *Interpreter) handle(req webhook.Request) webhook.Response {
	if req.UID == "" {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("request has no uid"))
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	switch req.Operation {
	case configv1alpha1.InterpreterOperationInterpretReplica:
		return i.interpretReplica(req, gvk)
	case configv1alpha1.InterpreterOperationReviseReplica:
		return i.reviseReplica(req, gvk)
	case configv1alpha1.InterpreterOperationRetain:
		return i.retain(req, gvk)
	case configv1alpha1.InterpreterOperationInterpretStatus:
		return i.reflectStatus(req, gvk)
	case configv1alpha1.InterpreterOperationInterpretHealth:
		return i.interpretHealth(req, gvk)
	case configv1alpha1.InterpreterOperationAggregateStatus:
		return i.aggregateStatus(req, gvk)
	case configv1alpha1.InterpreterOperationInterpretDependency:
		return i.interpretDependency(req, gvk)
	case configv1alpha1.InterpreterOperationInterpretComponent, configv1alpha1.InterpreterOperationPrune:
		return notServed(req, gvk)
	default:
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
	}
}

func (i *Interpreter) interpretReplica(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := replicaInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	replicas, requirements, err := h(obj)
	if err != nil {
		return failed(req, err)
	}
	return succeeded(func(r *configv1alpha1.ResourceInterpreterResponse) {
		r.Replicas = &replicas
		r.ReplicaRequirements = requirements
	})
}

func (i *Interpreter) reviseReplica(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := reviseReplicaInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	if req.DesiredReplicas == nil {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: request has no replicas", req.Operation))
	}
	if *req.DesiredReplicas < 0 {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: replicas %d is negative", req.Operation, *req.DesiredReplicas))
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	revised, err := h(obj.DeepCopy(), int64(*req.DesiredReplicas))
	if err != nil {
		return failed(req, err)
	}
	return patchResponse(req, obj, revised)
}

func (i *Interpreter) retain(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := retainInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	desired, resp := i.object(req, gvk)
	if desired == nil {
		return resp
	}
	if req.ObservedObject == nil || len(req.ObservedObject.Raw) == 0 {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: request has no observedObject", req.Operation))
	}
	observed := &unstructured.Unstructured{}
	if err := i.decoder.DecodeRaw(*req.ObservedObject, observed); err != nil {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: decode observedObject: %w", req.Operation, err))
	}
	if observed.GroupVersionKind() != gvk {
		return webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: observedObject is %s, request is for %s", req.Operation, describe(observed.GroupVersionKind()), gvk))
	}
	retained, err := h(desired.DeepCopy(), observed)
	if err != nil {
		return failed(req, err)
	}
	return patchResponse(req, desired, retained)
}

func (i *Interpreter) reflectStatus(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := reflectStatusInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	status, err := h(obj)
	if err != nil {
		return failed(req, err)
	}
	return succeeded(func(r *configv1alpha1.ResourceInterpreterResponse) { r.RawStatus = status })
}

func (i *Interpreter) interpretHealth(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := healthInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	healthy, err := h(obj)
	if err != nil {
		return failed(req, err)
	}
	return succeeded(func(r *configv1alpha1.ResourceInterpreterResponse) { r.Healthy = &healthy })
}

func (i *Interpreter) aggregateStatus(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := aggregateStatusInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	aggregated, err := h(obj.DeepCopy(), req.AggregatedStatus)
	if err != nil {
		return failed(req, err)
	}
	return patchResponse(req, obj, aggregated)
}

func (i *Interpreter) interpretDependency(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	h, ok := dependenciesInterpreters[gvk]
	if !ok {
		return notServed(req, gvk)
	}
	obj, resp := i.object(req, gvk)
	if obj == nil {
		return resp
	}
	deps, err := h(obj)
	if err != nil {
		return failed(req, err)
	}
	return succeeded(func(r *configv1alpha1.ResourceInterpreterResponse) { r.Dependencies = deps })
}

// object decodes the request's object and checks it is of the request's kind.
func (i *Interpreter) object(req webhook.Request, gvk schema.GroupVersionKind) (*unstructured.Unstructured, webhook.Response) {
	obj := &unstructured.Unstructured{}
	if err := i.decoder.Decode(req, obj); err != nil {
		return nil, webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: decode object: %w", req.Operation, err))
	}
	if got := obj.GroupVersionKind(); got != gvk {
		return nil, webhook.Errored(http.StatusBadRequest, fmt.Errorf("%s: object is %s, request is for %s", req.Operation, describe(got), gvk))
	}
	return obj, webhook.Response{}
}

func describe(gvk schema.GroupVersionKind) string {
	if gvk.Empty() {
		return "an object without apiVersion and kind"
	}
	return gvk.String()
}

func notServed(req webhook.Request, gvk schema.GroupVersionKind) webhook.Response {
	return webhook.Errored(http.StatusNotImplemented, fmt.Errorf("operation %s is not served for %s", req.Operation, describe(gvk)))
}

func failed(req webhook.Request, err error) webhook.Response {
	return webhook.Errored(http.StatusInternalServerError, fmt.Errorf("%s %s/%s: %w", req.Operation, req.Namespace, req.Name, err))
}

func succeeded(set func(*configv1alpha1.ResourceInterpreterResponse)) webhook.Response {
	resp := webhook.Succeeded("")
	set(&resp.ResourceInterpreterResponse)
	return resp
}
