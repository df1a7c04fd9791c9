package migration

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The gauges of observed state: computed at scrape time from the cached
// CheckpointPolicies and Migrations, so an age keeps growing between two
// rounds of the controller (and most of all when no round happens: a
// controller that stopped does not freeze its own alarm).
var (
	checkpointAgeDesc = prometheus.NewDesc("stateshift_checkpoint_age_seconds",
		"Age of the oldest of the latest verified checkpoints of a protected workload's pods on one cluster: "+
			"what an unplanned failover of that cluster now would lose.",
		[]string{"namespace", "policy", "kind", "workload", "cluster"}, nil)
	checkpointIntervalDesc = prometheus.NewDesc("stateshift_checkpoint_interval_seconds",
		"Schedule interval of a CheckpointPolicy.", []string{"namespace", "policy"}, nil)
	workloadProtectedDesc = prometheus.NewDesc("stateshift_workload_protected",
		"1 when a protected workload's Protected condition is True, else 0; reason is the condition's reason "+
			"(Protected, NotPropagated, NoCheckpoint, Stale, Disarmed, Failing).",
		[]string{"namespace", "policy", "kind", "workload", "reason"}, nil)
	workloadArmedDesc = prometheus.NewDesc("stateshift_workload_armed",
		"1 when a protected workload's restore plan is armed, else 0.",
		[]string{"namespace", "policy", "kind", "workload"}, nil)
	armedWorkloadsDesc = prometheus.NewDesc("stateshift_controller_armed_workloads",
		"Protected workloads whose restore is armed, per CheckpointPolicy.", []string{"namespace", "policy"}, nil)
	migrationUnfinishedDesc = prometheus.NewDesc("stateshift_migration_unfinished_seconds",
		"Time since an unfinished Migration started, with its current phase.",
		[]string{"namespace", "migration", "kind", "workload", "trigger", "phase"}, nil)
)

// stateSource is where the collector reads: the manager's cache, and
// whether this replica leads (only the leader exports, so two replicas do
// not double every series).
type stateSource struct {
	reader  client.Reader
	elected <-chan struct{}
	now     func() time.Time
}

// stateCollector is a prometheus.Collector over a stateSource set by
// SetupWithManager; it exports nothing before one is set.
type stateCollector struct{ source atomic.Pointer[stateSource] }

var observedState = &stateCollector{}

// scrapeTimeout bounds the cache reads of one scrape (the first one waits
// for the informers to sync).
const scrapeTimeout = 5 * time.Second

// Describe implements prometheus.Collector.
func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{checkpointAgeDesc, checkpointIntervalDesc, workloadProtectedDesc,
		workloadArmedDesc, armedWorkloadsDesc, migrationUnfinishedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := s.source.Load()
	if src == nil || !isClosed(src.elected) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := src.now()
	var policies v1alpha1.CheckpointPolicyList
	if err := src.reader.List(ctx, &policies); err != nil {
		scrapeError(err)
		return
	}
	for i := range policies.Items {
		collectPolicy(ch, &policies.Items[i], now)
	}
	var migrations v1alpha1.MigrationList
	if err := src.reader.List(ctx, &migrations); err != nil {
		scrapeError(err)
		return
	}
	for i := range migrations.Items {
		collectMigration(ch, &migrations.Items[i], now)
	}
}

// scrapeError logs a failed cache read and leaves its series out: an
// invalid metric would fail the whole /metrics response (promhttp's
// HTTPErrorOnError), the process's other metrics with it. The missing
// series fire the alerts' absent() rules instead.
func scrapeError(err error) {
	klog.Background().Error(err, "Cannot read the cache for the state metrics; they are left out of this scrape")
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// collectPolicy exports one policy's workloads from its status.
func collectPolicy(ch chan<- prometheus.Metric, p *v1alpha1.CheckpointPolicy, now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(checkpointIntervalDesc, interval(p).Seconds(), p.Namespace, p.Name)
	gauge(armedWorkloadsDesc, float64(p.Status.ArmedWorkloads), p.Namespace, p.Name)
	for _, w := range p.Status.Workloads {
		if c := meta.FindStatusCondition(w.Conditions, v1alpha1.ConditionProtected); c != nil {
			gauge(workloadProtectedDesc, boolValue(c.Status == "True"), p.Namespace, p.Name, w.Kind, w.Name, c.Reason)
		}
		gauge(workloadArmedDesc, boolValue(w.Armed), p.Namespace, p.Name, w.Kind, w.Name)
		for cluster, at := range oldestPerCluster(w.Pods) {
			gauge(checkpointAgeDesc, now.Sub(at).Seconds(), p.Namespace, p.Name, w.Kind, w.Name, cluster)
		}
	}
}

// oldestPerCluster is, per cluster, the oldest of its pods' latest verified
// checkpoints; a cluster with a pod that has none is left out (the
// workload's Protected condition says NoCheckpoint).
func oldestPerCluster(pods []v1alpha1.PodCheckpointRef) map[string]time.Time {
	out, missing := map[string]time.Time{}, map[string]bool{}
	for _, pod := range pods {
		if pod.CompletionTime == nil {
			missing[pod.Cluster] = true
			continue
		}
		if t, ok := out[pod.Cluster]; !ok || pod.CompletionTime.Time.Before(t) {
			out[pod.Cluster] = pod.CompletionTime.Time
		}
	}
	for c := range missing {
		delete(out, c)
	}
	return out
}

// collectMigration exports how long an unfinished Migration has run.
func collectMigration(ch chan<- prometheus.Metric, m *v1alpha1.Migration, now time.Time) {
	if isTerminal(m.Status.Phase) {
		return
	}
	start := m.CreationTimestamp.Time
	if m.Status.StartTime != nil {
		start = m.Status.StartTime.Time
	}
	phase := string(m.Status.Phase)
	if phase == "" {
		phase = string(v1alpha1.MigrationPending)
	}
	ch <- prometheus.MustNewConstMetric(migrationUnfinishedDesc, prometheus.GaugeValue, now.Sub(start).Seconds(),
		m.Namespace, m.Name, m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name, string(m.Spec.Trigger), phase)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
