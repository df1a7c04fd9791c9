package interpreter

import (
	"context"
	"time"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "stateshift",
		Subsystem: "interpreter",
		Name:      "requests_total",
		Help:      "Resource interpreter requests by operation, kind and result (success, error, rejected before decoding).",
	}, []string{"operation", "kind", "result"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "stateshift",
		Subsystem: "interpreter",
		Name:      "request_duration_seconds",
		Help:      "Time to answer a resource interpreter request, by operation and kind.",
		Buckets:   []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"operation", "kind"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration)
}

// knownOperations bounds the operation label: requests come from the
// network and must not grow the metrics without limit.
var knownOperations = map[configv1alpha1.InterpreterOperation]bool{
	configv1alpha1.InterpreterOperationInterpretReplica:    true,
	configv1alpha1.InterpreterOperationInterpretComponent:  true,
	configv1alpha1.InterpreterOperationReviseReplica:       true,
	configv1alpha1.InterpreterOperationInterpretStatus:     true,
	configv1alpha1.InterpreterOperationPrune:               true,
	configv1alpha1.InterpreterOperationRetain:              true,
	configv1alpha1.InterpreterOperationAggregateStatus:     true,
	configv1alpha1.InterpreterOperationInterpretHealth:     true,
	configv1alpha1.InterpreterOperationInterpretDependency: true,
}

func labels(req webhook.Request) (operation, kind string) {
	operation, kind = "other", "other"
	if knownOperations[req.Operation] {
		operation = string(req.Operation)
	}
	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	if served[gvk] {
		kind = gvk.Kind
	}
	return operation, kind
}

func observe(req webhook.Request, resp webhook.Response, elapsed time.Duration) {
	operation, kind := labels(req)
	result := "success"
	if !resp.Successful {
		result = "error"
	}
	requestsTotal.WithLabelValues(operation, kind, result).Inc()
	requestDuration.WithLabelValues(operation, kind).Observe(elapsed.Seconds())
}

// handledKey marks, in a request's context, that Handle ran: the HTTP
// wrapper counts the requests Karmada's library rejected before (bad
// content type, undecodable body).
type handledKey struct{}

func markHandled(ctx context.Context) {
	if p, ok := ctx.Value(handledKey{}).(*bool); ok {
		*p = true
	}
}

func rejected() {
	requestsTotal.WithLabelValues("unknown", "unknown", "rejected").Inc()
}
