package migration

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// markProtected sets a protected workload's data-loss window
// (LatestCheckpointTime) and its Protected condition from what the round
// observed: current are the workload's Checkpoints of its current template,
// roundErr what stopped the round, if anything. The condition's transition
// time survives from the policy's previous status.
func markProtected(p *v1alpha1.CheckpointPolicy, pw *v1alpha1.ProtectedWorkload, current []v1alpha1.Checkpoint, now time.Time, roundErr error) {
	pw.LatestCheckpointTime = oldestLatest(pw.Pods)
	cond := ProtectedCondition(pw, current, interval(p), now, roundErr)
	cond.ObservedGeneration = p.Generation
	for i := range p.Status.Workloads {
		prev := &p.Status.Workloads[i]
		if prev.Kind == pw.Kind && prev.Name == pw.Name {
			pw.Conditions = append([]metav1.Condition(nil), prev.Conditions...)
		}
	}
	meta.SetStatusCondition(&pw.Conditions, cond)
}

// oldestLatest is the oldest completion time of the pods' latest verified
// checkpoints; nil when a pod has none (or there is no pod).
func oldestLatest(pods []v1alpha1.PodCheckpointRef) *metav1.Time {
	var oldest *metav1.Time
	for _, pod := range pods {
		if pod.CompletionTime == nil {
			return nil
		}
		if oldest == nil || pod.CompletionTime.Before(oldest) {
			oldest = pod.CompletionTime.DeepCopy()
		}
	}
	return oldest
}

// ProtectedCondition judges whether a failover now would restore recent
// state: the first that applies of Failing (the round or a pod's latest
// checkpoint attempt failed), NotPropagated, NoCheckpoint, Stale (older
// than StaleIntervals intervals) and Disarmed makes it False.
func ProtectedCondition(pw *v1alpha1.ProtectedWorkload, current []v1alpha1.Checkpoint, every time.Duration, now time.Time, roundErr error) metav1.Condition {
	no := func(reason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionProtected, Status: metav1.ConditionFalse, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	stale := time.Duration(v1alpha1.StaleIntervals) * every
	switch pod, failed := failingPod(pw.Pods, current); {
	case roundErr != nil:
		return no(v1alpha1.ProtectedReasonFailing, "the controller cannot protect the workload: %v", roundErr)
	case failed != nil:
		return no(v1alpha1.ProtectedReasonFailing, "the latest checkpoint %s of pod %s on %s failed: %s", failed.Name, pod.Pod, pod.Cluster, failed.Status.Message)
	case len(pw.Clusters) == 0:
		return no(v1alpha1.ProtectedReasonNotPropagated, "%s", pw.Message)
	}
	for _, pod := range pw.Pods {
		if pod.CompletionTime == nil {
			return no(v1alpha1.ProtectedReasonNoCheckpoint, "pod %s on %s has no verified checkpoint of the current template: a move now starts it cold", pod.Pod, pod.Cluster)
		}
		if age := now.Sub(pod.CompletionTime.Time); age > stale {
			return no(v1alpha1.ProtectedReasonStale, "the latest verified checkpoint of pod %s on %s is %s old (schedule every %s, stale after %s)",
				pod.Pod, pod.Cluster, age.Round(time.Second), every, stale)
		}
	}
	if !pw.Armed {
		return no(v1alpha1.ProtectedReasonDisarmed, "no restore plan armed: %s", pw.Message)
	}
	msg := fmt.Sprintf("armed with %s", pw.ArmedCheckpoint)
	if pw.LatestCheckpointTime != nil {
		msg += fmt.Sprintf("; oldest latest verified checkpoint %s old", now.Sub(pw.LatestCheckpointTime.Time).Round(time.Second))
	}
	return metav1.Condition{Type: v1alpha1.ConditionProtected, Status: metav1.ConditionTrue, Reason: v1alpha1.ProtectedReasonProtected, Message: msg}
}

// failingPod finds a pod whose newest finished Checkpoint of the current
// template Failed: its next scheduled one will likely fail the same way.
func failingPod(pods []v1alpha1.PodCheckpointRef, current []v1alpha1.Checkpoint) (v1alpha1.PodCheckpointRef, *v1alpha1.Checkpoint) {
	for _, pod := range pods {
		mine := ofPod(onCluster(current, pod.Cluster), pod.Pod)
		newestFirst(mine)
		for i := range mine {
			if !mine[i].IsFinished() {
				continue
			}
			if mine[i].Status.Phase == v1alpha1.CheckpointFailed {
				return pod, &mine[i]
			}
			break
		}
	}
	return v1alpha1.PodCheckpointRef{}, nil
}

// summarize counts a policy's unprotected workloads and finds its widest
// data-loss window.
func summarize(status *v1alpha1.CheckpointPolicyStatus) {
	status.UnprotectedWorkloads, status.OldestCheckpointTime = 0, nil
	for _, pw := range status.Workloads {
		if !meta.IsStatusConditionTrue(pw.Conditions, v1alpha1.ConditionProtected) {
			status.UnprotectedWorkloads++
		}
		t := pw.LatestCheckpointTime
		if t != nil && (status.OldestCheckpointTime == nil || t.Before(status.OldestCheckpointTime)) {
			status.OldestCheckpointTime = t.DeepCopy()
		}
	}
}
