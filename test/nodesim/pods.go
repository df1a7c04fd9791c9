package nodesim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

func (n *Node) processNext(ctx context.Context) bool {
	key, quit := n.queue.Get()
	if quit {
		return false
	}
	defer n.queue.Done(key)
	if err := n.syncPod(ctx, key); err != nil {
		if ctx.Err() == nil {
			klog.FromContext(ctx).V(2).Info("Sync pod failed, will retry", "pod", key, "err", err)
		}
		n.queue.AddRateLimited(key)
		return true
	}
	n.queue.Forget(key)
	return true
}

// syncPod makes the runtime match one pod, as the kubelet's pod worker does:
// start what should run, stop what was deleted, report status.
func (n *Node) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := n.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		n.mu.Lock()
		if ps := n.pods[key]; ps != nil {
			ps.cancel()
			delete(n.pods, key)
		}
		n.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}

	n.mu.Lock()
	ps := n.pods[key]
	if ps != nil && ps.uid != pod.UID {
		ps.cancel()
		delete(n.pods, key)
		ps = nil
	}
	if pod.DeletionTimestamp != nil {
		if ps != nil {
			ps.cancel()
			delete(n.pods, key)
		}
		n.mu.Unlock()
		return n.finishTermination(ctx, pod)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		n.mu.Unlock()
		return nil
	}
	if ps == nil {
		ps = n.newPodState(ctx, pod)
		n.pods[key] = ps
	}
	now := time.Now()
	for _, c := range ps.containers {
		klog.FromContext(ctx).V(4).Info("Sync container", "pod", key, "container", c.name, "running", c.running, "starting", c.starting, "nextTry", c.nextTry)
		if !c.running && !c.starting && !now.Before(c.nextTry) {
			c.starting = true
			go n.startContainer(key, ps, c, pod.DeepCopy())
		}
	}
	status := n.podStatus(pod, ps, now)
	n.mu.Unlock()

	if equality.Semantic.DeepEqual(pod.Status, *status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	if _, err := n.client.CoreV1().Pods(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of pod %s: %w", key, err)
	}
	return nil
}

func (n *Node) newPodState(ctx context.Context, pod *corev1.Pod) *podState {
	pctx, cancel := context.WithCancel(ctx)
	ps := &podState{
		uid: pod.UID, namespace: pod.Namespace, name: pod.Name,
		ctx: pctx, cancel: cancel, startTime: time.Now(),
	}
	memBytes, memErr := n.memoryBytes(pod)
	for _, cs := range pod.Spec.Containers {
		c := &container{name: cs.Name, image: cs.Image, seed: containerSeed(pod.UID, cs.Name), memBytes: memBytes}
		if memErr != nil {
			// A bad annotation is the pod author's mistake: say so where they look.
			c.reason, c.message, c.nextTry = "CreateContainerError", memErr.Error(), time.Now().Add(100*365*24*time.Hour)
		}
		ps.containers = append(ps.containers, c)
	}
	return ps
}

func (n *Node) memoryBytes(pod *corev1.Pod) (int64, error) {
	v, ok := pod.Annotations[MemoryBytesAnnotation]
	if !ok {
		return n.cfg.StateBytes, nil
	}
	b, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || b < 0 {
		return 0, fmt.Errorf("annotation %s=%q is not a non-negative byte count", MemoryBytesAnnotation, v)
	}
	return b, nil
}

// finishTermination deletes a terminating pod with grace period 0 once its
// containers are stopped, as the kubelet's status manager does.
func (n *Node) finishTermination(ctx context.Context, pod *corev1.Pod) error {
	err := n.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete terminated pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// startContainer runs one start attempt: resolve the image (maybe pull and
// restore a checkpoint), then record the outcome and wake the pod's sync.
func (n *Node) startContainer(key string, ps *podState, c *container, pod *corev1.Pod) {
	logger := klog.FromContext(ps.ctx).WithValues("pod", key, "container", c.name)
	var spec corev1.Container
	for _, cs := range pod.Spec.Containers {
		if cs.Name == c.name {
			spec = cs
		}
	}
	res := n.prepareContainer(ps.ctx, pod, spec)

	n.mu.Lock()
	c.starting = false
	if ps.ctx.Err() != nil {
		n.mu.Unlock()
		return
	}
	now := time.Now()
	if res.err != nil {
		c.attempts++
		c.reason, c.message = res.reason, res.err.Error()
		backoff := n.cfg.BackoffInitial << min(c.attempts-1, 20)
		if backoff > n.cfg.BackoffMax || backoff <= 0 {
			backoff = n.cfg.BackoffMax
		}
		c.nextTry = now.Add(backoff)
		n.mu.Unlock()
		logger.V(1).Info("Container failed to start, backing off", "reason", res.reason, "err", res.err, "backoff", backoff)
		n.queue.Add(key)
		// A timer of its own: the queue keeps one delay per key, and an
		// earlier rate-limited re-add would swallow this one.
		time.AfterFunc(backoff, func() { n.queue.Add(key) })
		n.recordPulled(ps.ctx, pod, c.name, res.pulled)
		return
	}
	c.running, c.reason, c.message = true, "", ""
	c.id = containerID(c.seed, c.attempts)
	c.created, c.started = now, now
	c.imageID, c.imageHexID = res.imageID, res.imageHexID
	if r := res.restored; r != nil {
		c.seed, c.counter, c.memBytes = r.state.Seed, r.state.Counter, r.state.MemoryBytes
		c.restoredFrom, c.restoredCounter, c.restoredSHA, c.restoredAt = spec.Image, r.state.Counter, r.pagesSHA, now
		c.sha, c.shaSeed, c.shaCounter = r.pagesSHA, r.state.Seed, r.state.Counter
		if p := res.pulled; p != nil {
			c.restorePull, c.restoreRuntime = p.duration, now.Sub(p.at)
		}
	}
	pull, restore := c.restorePull, c.restoreRuntime
	n.mu.Unlock()
	if res.restored != nil {
		logger.Info("Restored container from checkpoint image", "image", spec.Image, "counter", res.restored.state.Counter,
			"pull", pull, "restore", restore)
	} else {
		logger.V(2).Info("Started container", "image", spec.Image)
	}
	n.queue.Add(key)
	// After the start, so the API call does not delay it; the event keeps
	// the time of the pull.
	n.recordPulled(ps.ctx, pod, c.name, res.pulled)
}

// recordPulled reports a successful pull in a Pulled Event on the pod, with
// the kubelet's reason, wording and source. It is best effort, as the
// kubelet's event recorder is: a failure is only logged.
func (n *Node) recordPulled(ctx context.Context, pod *corev1.Pod, containerName string, p *pullResult) {
	if p == nil || ctx.Err() != nil {
		return
	}
	d := p.duration.Truncate(time.Millisecond)
	msg := fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.", p.image, d, d, p.size)
	ts := metav1.NewTime(p.at)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%v.%x", pod.Name, p.at.UnixNano()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, FieldPath: fmt.Sprintf("spec.containers{%s}", containerName),
		},
		Reason: reasonPulled, Message: msg, Type: corev1.EventTypeNormal,
		FirstTimestamp: ts, LastTimestamp: ts, Count: 1,
		Source:              corev1.EventSource{Component: "kubelet", Host: n.cfg.NodeName},
		ReportingController: "kubelet", ReportingInstance: n.cfg.NodeName,
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		klog.FromContext(ctx).V(1).Info("Could not record event", "pod", pod.Namespace+"/"+pod.Name, "reason", reasonPulled, "err", err)
	}
}

// podStatus is the status the kubelet would report for pod. Times are cut to
// seconds, the API's precision, so an unchanged status compares equal.
func (n *Node) podStatus(pod *corev1.Pod, ps *podState, now time.Time) *corev1.PodStatus {
	st := pod.Status.DeepCopy()
	ts := func(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }
	st.HostIP, st.PodIP = n.cfg.IP, n.cfg.IP
	st.HostIPs = []corev1.HostIP{{IP: n.cfg.IP}}
	st.PodIPs = []corev1.PodIP{{IP: n.cfg.IP}}
	if st.StartTime == nil {
		t := ts(ps.startTime)
		st.StartTime = &t
	}
	var statuses []corev1.ContainerStatus
	var notReady []string
	anyRunning := false
	for _, c := range ps.containers {
		cs := corev1.ContainerStatus{Name: c.name, Image: c.image, ImageID: c.imageID}
		if c.running {
			anyRunning = true
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: ts(c.started)}
			cs.Ready, cs.Started = true, ptr.To(true)
			cs.ContainerID = "cri-o://" + c.id
		} else {
			reason, msg := c.reason, c.message
			if reason == "" {
				reason = "ContainerCreating"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			cs.Started = ptr.To(false)
			notReady = append(notReady, c.name)
		}
		statuses = append(statuses, cs)
	}
	st.ContainerStatuses = statuses
	var inits []corev1.ContainerStatus
	for _, ic := range pod.Spec.InitContainers {
		// Init containers are not simulated: they completed at once.
		inits = append(inits, corev1.ContainerStatus{
			Name: ic.Name, Image: ic.Image, ImageID: ic.Image, Ready: true, Started: ptr.To(false),
			ContainerID: "cri-o://" + containerID(containerSeed(pod.UID, ic.Name), 0),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: ts(ps.startTime), FinishedAt: ts(ps.startTime),
				ContainerID: "cri-o://" + containerID(containerSeed(pod.UID, ic.Name), 0),
			}},
		})
	}
	st.InitContainerStatuses = inits
	if anyRunning {
		st.Phase = corev1.PodRunning
	} else {
		st.Phase = corev1.PodPending
	}
	ready := corev1.ConditionTrue
	reason, msg := "", ""
	if len(notReady) > 0 {
		ready = corev1.ConditionFalse
		reason, msg = "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	}
	setPodCondition(st, corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue}, now)
	setPodCondition(st, corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, now)
	setPodCondition(st, corev1.PodCondition{Type: corev1.ContainersReady, Status: ready, Reason: reason, Message: msg}, now)
	setPodCondition(st, corev1.PodCondition{Type: corev1.PodReady, Status: ready, Reason: reason, Message: msg}, now)
	return st
}

// setPodCondition keeps the transition time of a condition whose status did
// not change.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition, now time.Time) {
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
