package agent

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/restore"
)

// ReasonRestoredAgain is the reason of the Warning Event written on a
// restored pod whose restored container restarted in place.
const ReasonRestoredAgain = "CheckpointRestoredAgain"

// restoredAgain counts the Events ReasonRestoredAgain: one per in-place
// restart of a restored container that this agent saw (restarts between
// two observations of the pod count once).
var restoredAgain = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "stateshift_agent_restored_again_total",
	Help: "In-place restarts of restored containers, which restore their checkpoint again (one per " + ReasonRestoredAgain + " Event).",
})

func init() { metrics.Registry.MustRegister(restoredAgain) }

// RestartWatcher makes an in-place restart of a restored container visible.
//
// A restored container runs from its checkpoint image. When it restarts in
// place (a crash, a failed liveness probe) the kubelet creates it again from
// that same image, and CRI-O restores the same checkpoint again: the state
// of the checkpoint comes back and whatever the container did since is
// lost. stateshift cannot prevent that (no admission sees an in-place
// restart), so the agent of the pod's node says it: one Warning Event on
// the pod per new restart, and stateshift_agent_restored_again_total.
//
// It only looks at this node's pods (the manager's pod cache holds no
// others) that carry stateshift.io/restored-from; the predicate drops every
// other pod before it reaches the queue.
type RestartWatcher struct {
	// Client reads this node's pods from the cache.
	Client client.Client
	// Recorder writes the Events on the pods.
	Recorder events.EventRecorder
	// NodeName is this agent's node; a pod elsewhere is ignored (the cache
	// already leaves them out).
	NodeName string

	mu sync.Mutex
	// reported is, per pod, the restart count last reported for each of
	// its restored containers. It lives in memory only: an agent that
	// restarts forgets it and reports a restored container's current
	// restart count once more (at most one repeated Event per container).
	reported map[types.NamespacedName]*reportedRestarts
}

type reportedRestarts struct {
	uid        types.UID
	containers map[string]int32 // container -> restart count reported
}

// SetupWithManager registers the watcher with the agent's manager.
func (w *RestartWatcher) SetupWithManager(mgr ctrl.Manager) error {
	w.reported = map[types.NamespacedName]*reportedRestarts{}
	return ctrl.NewControllerManagedBy(mgr).
		Named("restored-restarts").
		For(&corev1.Pod{}, builder.WithPredicates(restoredPods())).
		// The binary runs one agent; tests run several in one process, which
		// controller-runtime's global name check would refuse.
		WithOptions(controller.Options{SkipNameValidation: ptr(true)}).
		Complete(w)
}

// restoredPods passes the pods carrying stateshift.io/restored-from. An
// update passes when either version carries it, and a delete passes too, so
// that the watcher forgets the pod.
func restoredPods() predicate.Predicate {
	restored := func(o client.Object) bool {
		if o == nil {
			return false
		}
		_, ok := o.GetAnnotations()[restore.AnnotationRestoredFrom]
		return ok
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return restored(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return restored(e.ObjectOld) || restored(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return restored(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return restored(e.Object) },
	}
}

// Reconcile reports the new in-place restarts of one pod's restored
// containers.
func (w *RestartWatcher) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := klog.FromContext(ctx).WithValues("pod", req.NamespacedName)
	pod := &corev1.Pod{}
	if err := w.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			w.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	from, ok := pod.Annotations[restore.AnnotationRestoredFrom]
	if !ok || (w.NodeName != "" && pod.Spec.NodeName != w.NodeName) {
		w.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	originals, err := restore.OriginalImages(pod.Annotations)
	if err != nil {
		// Written by stateshift: a broken value does not heal by retrying.
		log.Error(err, "cannot tell the restored containers of the pod")
		return ctrl.Result{}, nil
	}
	for _, r := range restoredRestarts(pod, originals) {
		if !w.firstReport(req.NamespacedName, pod.UID, r.container, r.restarts) {
			continue
		}
		restoredAgain.Inc()
		log.Info("restored container restarted in place", "container", r.container, "restartCount", r.restarts, "checkpoint", from, "image", r.image)
		w.Recorder.Eventf(containerRef(pod, r.container), nil, corev1.EventTypeWarning, ReasonRestoredAgain, "Restart",
			"container %s restarted in place (restart %d): the runtime restores checkpoint %s again from %s, "+
				"bringing back that checkpoint's state; delete the pod to start it from the template's image",
			r.container, r.restarts, from, r.image)
	}
	return ctrl.Result{}, nil
}

type restart struct {
	container string
	image     string // the checkpoint image the container runs
	restarts  int32
}

// restoredRestarts lists the restored containers of pod that restarted: a
// container named in original-images whose image is no longer its original
// one (it runs a checkpoint image), with a restart count above zero. A
// container started from its original image (a cold start) restarts from
// that image, like any other container.
func restoredRestarts(pod *corev1.Pod, originals map[string]string) []restart {
	images := make(map[string]string, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		images[c.Name] = c.Image
	}
	var out []restart
	for _, st := range pod.Status.ContainerStatuses {
		original, named := originals[st.Name]
		image, inSpec := images[st.Name]
		if !named || !inSpec || image == original || st.RestartCount <= 0 {
			continue
		}
		out = append(out, restart{container: st.Name, image: image, restarts: st.RestartCount})
	}
	return out
}

// firstReport records that container of the pod restarted restarts times
// and says whether that restart was not reported yet. The key is the pod's
// UID: a pod created again under the same name starts over.
func (w *RestartWatcher) firstReport(key types.NamespacedName, uid types.UID, container string, restarts int32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.reported[key]
	if r == nil || r.uid != uid {
		r = &reportedRestarts{uid: uid, containers: map[string]int32{}}
		w.reported[key] = r
	}
	// A pod's restart count only grows: a count at or below the one
	// reported is no new restart. Counts skipped between two observations
	// get no Event of their own; the next one says how many there were.
	if restarts <= r.containers[container] {
		return false
	}
	r.containers[container] = restarts
	return true
}

func (w *RestartWatcher) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.reported, key)
}

// containerRef is the Event's regarding: the pod, with the container's
// field path as the kubelet writes it. The pod's resourceVersion is part of
// it, so that two restarts of one container never fold into one Event
// series (events.k8s.io aggregation keys on the regarding object, not on
// the note).
func containerRef(pod *corev1.Pod, container string) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion:      "v1",
		Kind:            "Pod",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       fmt.Sprintf("spec.containers{%s}", container),
	}
}
