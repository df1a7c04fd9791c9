package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/stateshift/stateshift/pkg/version"
)

// Stage names used in metrics and timings.
const (
	stageCheckpoint = "checkpoint" // the kubelet call
	stageImage      = "image"      // build and push
	stageVerify     = "verify"     // read back by digest
)

// pushFailureReasons are the failure reasons that mean the image did not
// reach the registry verified: the data-loss window grows while they last.
var pushFailureReasons = []string{
	reasonPush, reasonPushTimeout, reasonVerify, reasonVerifyTimeout,
	reasonCredentials, reasonCredentialsNotAllowed,
}

var (
	stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stateshift_agent_stage_duration_seconds",
		Help:    "Duration of each stage of a container checkpoint (checkpoint, image, verify), by builder.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"stage", "builder"})
	archiveBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_archive_bytes_total",
		Help: "Bytes of checkpoint archives turned into pushed and verified images, by builder.",
	}, []string{"builder"})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_failures_total",
		Help: "Failed checkpoint attempts, by reason.",
	}, []string{"reason"})
	pushFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_push_failures_total",
		Help: "Checkpoint attempts whose images did not reach the registry verified, by reason " +
			"(PushFailed, PushTimeout, VerifyFailed, VerifyTimeout, CredentialsInvalid, CredentialsNotAllowed).",
	}, []string{"reason"})
	checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stateshift_agent_checkpoints_total",
		Help: "Checkpoints finished, by phase (Succeeded or Failed).",
	}, []string{"phase"})
)

func init() {
	// Every push reason starts at 0 so that rate() and increase() see the
	// first failure (a series born at 1 has no increase).
	for _, r := range pushFailureReasons {
		pushFailures.WithLabelValues(r)
		failures.WithLabelValues(r)
	}
	metrics.Registry.MustRegister(stageDuration, archiveBytes, failures, pushFailures, checkpoints,
		version.BuildInfo("checkpoint-agent"))
}

// observeFailure counts a failed attempt by reason, and as a push failure
// when the registry side failed.
func observeFailure(reason string) {
	failures.WithLabelValues(reason).Inc()
	for _, r := range pushFailureReasons {
		if r == reason {
			pushFailures.WithLabelValues(reason).Inc()
		}
	}
}
