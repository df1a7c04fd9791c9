package podrestore

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// decisions counts the webhook's outcomes: unchanged, per-pod, shared, cold,
// refused (an image of another namespace or container), error.
var decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "stateshift_pod_restore_decisions_total",
	Help: "Pods seen by the pod-restore webhook, by outcome (unchanged, per-pod, shared, cold, refused, error).",
}, []string{"outcome"})

func init() { metrics.Registry.MustRegister(decisions) }
