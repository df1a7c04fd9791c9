package migration

import (
	"context"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// SourceState is what the controller knows about a source cluster.
type SourceState struct {
	Evicted  bool // a graceful eviction task from it is on the binding
	Failed   bool // NoExecute taint, or not Ready
	Cordoned bool // cluster.karmada.io/unschedulable NoSchedule taint
}

// Classify names the trigger of a move from the sources' states and
// whether a reschedule was asked for (rb.spec.rescheduleTriggeredAt newer
// than the previous schedule).
func Classify(sources map[string]SourceState, rescheduled bool) v1alpha1.MigrationTrigger {
	var evicted, failed, cordoned bool
	for _, s := range sources {
		evicted = evicted || s.Evicted
		failed = failed || s.Failed
		cordoned = cordoned || s.Cordoned
	}
	switch {
	case evicted:
		return v1alpha1.TriggerEviction
	case failed:
		return v1alpha1.TriggerFailover
	case rescheduled:
		return v1alpha1.TriggerRebalance
	case cordoned:
		return v1alpha1.TriggerCordon
	}
	return v1alpha1.TriggerPlacementChange
}

func (c *Controller) classify(ctx context.Context, rb *workv1alpha2.ResourceBinding, sources []string) (v1alpha1.MigrationTrigger, error) {
	states := map[string]SourceState{}
	for _, s := range sources {
		var st SourceState
		for _, t := range rb.Spec.GracefulEvictionTasks {
			if t.FromCluster == s {
				st.Evicted = true
			}
		}
		cl := &clusterv1alpha1.Cluster{}
		err := c.Client.Get(ctx, types.NamespacedName{Name: s}, cl)
		switch {
		case err == nil:
			st.Cordoned = taintedFor(cl, clusterv1alpha1.TaintClusterUnscheduler, corev1.TaintEffectNoSchedule)
			st.Failed = !meta.IsStatusConditionTrue(cl.Status.Conditions, clusterv1alpha1.ClusterConditionReady)
			for _, t := range cl.Spec.Taints {
				if t.Effect == corev1.TaintEffectNoExecute {
					st.Failed = true
				}
			}
		case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		default:
			return "", err
		}
		states[s] = st
	}
	// A WorkloadRebalancer stamps rescheduleTriggeredAt; a recent stamp
	// means the move came from it.
	rescheduled := rb.Spec.RescheduleTriggeredAt != nil && c.now().Sub(rb.Spec.RescheduleTriggeredAt.Time) < recentReschedule
	return Classify(states, rescheduled), nil
}

// recentReschedule: how old a rescheduleTriggeredAt may be to explain a move.
const recentReschedule = 5 * time.Minute
