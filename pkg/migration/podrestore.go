package migration

import (
	"context"
	"fmt"
	"sort"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// restoreFailureReasons are the container waiting reasons of a pod whose
// checkpoint cannot run on its node: the runtime refused the image as a
// restore (a CRI-O with restore disabled starts a checkpoint image as an
// ordinary image and fails with CreateContainerError), or the image cannot
// be pulled.
var restoreFailureReasons = map[string]bool{
	"CreateContainerError": true, "RunContainerError": true, "ErrImagePull": true,
	"ImagePullBackOff": true, "InvalidImageName": true, "CreateContainerConfigError": true,
}

// PodJudgement is what a destination's pods say about their restore.
type PodJudgement struct {
	// Restored pods run their checkpoint (restore planned, not started cold).
	Restored []string
	// Cold pods were started from their original image: "pod (reason)".
	Cold map[string]string
	// Failed pods claim a restore their node cannot run: "pod: container reason: message".
	Failed []string
}

// JudgePods reads the restore outcome of each pod from the annotations the
// restore plan and the pod-restore webhook put on it and from its
// container states.
func JudgePods(pods []corev1.Pod) PodJudgement {
	j := PodJudgement{Cold: map[string]string{}}
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		if why, ok := pod.Annotations[restore.AnnotationColdStart]; ok {
			j.Cold[pod.Name] = why
			continue
		}
		if _, planned := pod.Annotations[restore.AnnotationRestoredFrom]; !planned {
			j.Cold[pod.Name] = "no restore planned for it"
			continue
		}
		if why := restoreFailure(pod); why != "" {
			j.Failed = append(j.Failed, pod.Name+": "+why)
			continue
		}
		if pod.Status.Phase == corev1.PodRunning {
			j.Restored = append(j.Restored, pod.Name)
		}
	}
	sort.Strings(j.Restored)
	sort.Strings(j.Failed)
	return j
}

func restoreFailure(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && restoreFailureReasons[w.Reason] {
			return fmt.Sprintf("container %s %s: %s", cs.Name, w.Reason, w.Message)
		}
	}
	return ""
}

// ColdPlannedPods lists the planned pods that started cold ("pod started
// cold (reason)"): a StatefulSet's pods that restore a checkpoint (by the
// name they restore into), a
// Deployment's every pod (all its replicas restore the plan's checkpoint).
// pending says that a planned pod does not run yet, either way.
func ColdPlannedPods(kind string, planned []v1alpha1.MigrationCheckpoint, j PodJudgement) (cold []string, pending bool) {
	restored := map[string]bool{}
	for _, p := range j.Restored {
		restored[p] = true
	}
	describe := func(pod string) string { return fmt.Sprintf("%s started cold (%s)", pod, j.Cold[pod]) }
	if kind != "StatefulSet" {
		for pod := range j.Cold {
			cold = append(cold, describe(pod))
		}
		sort.Strings(cold)
		return cold, len(j.Restored) == 0 && len(cold) == 0
	}
	for _, mc := range planned {
		pod := restoresInto(mc)
		switch _, isCold := j.Cold[pod]; {
		case pod == "" || restored[pod]:
		case isCold:
			cold = append(cold, describe(pod))
		default:
			pending = true
		}
	}
	return cold, pending
}

// markUnable labels a cluster whose pods failed to restore
// stateshift.io/restore=false and says why, so that the plan stops
// targeting it and the next move avoids it. An operator removes the label
// once the node can restore.
func (c *Controller) markUnable(ctx context.Context, cluster, why string) error {
	cl := &clusterv1alpha1.Cluster{}
	if err := c.Client.Get(ctx, types.NamespacedName{Name: cluster}, cl); err != nil {
		return fmt.Errorf("mark cluster %s unable to restore: %w", cluster, err)
	}
	patch := client.MergeFrom(cl.DeepCopy())
	if cl.Labels == nil {
		cl.Labels = map[string]string{}
	}
	if cl.Annotations == nil {
		cl.Annotations = map[string]string{}
	}
	cl.Labels[LabelRestore] = "false"
	cl.Annotations[v1alpha1.AnnotationRestoreFailure] = truncate(why, 1024)
	if err := c.Client.Patch(ctx, cl, patch); err != nil {
		return fmt.Errorf("mark cluster %s unable to restore: %w", cluster, err)
	}
	c.Recorder.Eventf(cl, corev1.EventTypeWarning, "RestoreFailed", "labelled %s=false: %s", LabelRestore, why)
	return nil
}
