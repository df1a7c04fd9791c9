package migration

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The map functions below turn a watch event on one object into requests
// for the objects that depend on it. A map function cannot return an
// error: when it cannot tell whom to enqueue, the event is lost (the
// reconcilers still requeue on their own schedules), so it says so in the
// log, naming the object, instead of dropping it silently.

// policyBatch is how long the checkpoints controller gathers the events
// of a policy's Checkpoints and bindings before it looks again.
const policyBatch = time.Second

// batched delays the requests h enqueues by d, so that the events of a
// round (each of a policy's hundred Checkpoints settling, each binding's
// status following) make one reconcile of the policy a second rather than
// one each: the queue holds a request once however often it is added.
// Only the checkpoints controller batches (its next round, retention and
// the policy's status can wait a second): the restore plan must carry a
// verified checkpoint, and a move must be detected, as soon as possible.
func batched(h handler.EventHandler, d time.Duration) handler.EventHandler {
	if d <= 0 {
		return h
	}
	return batchingHandler{h: h, d: d}
}

type batchingHandler struct {
	h handler.EventHandler
	d time.Duration
}

type delayingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	d time.Duration
}

func (q delayingQueue) Add(r reconcile.Request) { q.AddAfter(r, q.d) }

func (b batchingHandler) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Create(ctx, e, delayingQueue{q, b.d})
}

func (b batchingHandler) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Update(ctx, e, delayingQueue{q, b.d})
}

func (b batchingHandler) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Delete(ctx, e, delayingQueue{q, b.d})
}

func (b batchingHandler) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Generic(ctx, e, delayingQueue{q, b.d})
}

// policyOfCheckpoint enqueues the CheckpointPolicy that created a
// Checkpoint. A Checkpoint without the label was made by a person or
// another tool: no policy depends on it, nothing is lost.
func policyOfCheckpoint(_ context.Context, o client.Object) []reconcile.Request {
	if p := o.GetLabels()[LabelPolicy]; p != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: p}}}
	}
	return nil
}

// policiesInNamespace enqueues every CheckpointPolicy in o's namespace (a
// binding or a template changed: any of them may select it).
func (c *Controller) policiesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var l v1alpha1.CheckpointPolicyList
	// Names only: no copies (this runs for every event of the namespace).
	if err := c.Client.List(ctx, &l, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		eventDropped(ctx, err, o, "CheckpointPolicies")
		return nil
	}
	out := make([]reconcile.Request, 0, len(l.Items))
	for _, p := range l.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
	}
	return out
}

// unfinishedMigrationsInNamespace enqueues the Migrations in o's namespace
// that are still running (a Checkpoint or a binding they wait for changed).
func (c *Controller) unfinishedMigrationsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var l v1alpha1.MigrationList
	// Names and phases only: no copies. This runs for every Checkpoint and
	// binding event of the namespace, and after a storm the namespace
	// holds a Migration for each workload that moved.
	if err := c.Client.List(ctx, &l, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		eventDropped(ctx, err, o, "Migrations")
		return nil
	}
	return unfinished(l.Items, "")
}

// unfinishedCordonMigrations enqueues every running Cordon Migration (a
// Cluster's spec or labels changed: the cordon may be lifted).
func (c *Controller) unfinishedCordonMigrations(ctx context.Context, o client.Object) []reconcile.Request {
	var l v1alpha1.MigrationList
	if err := c.Client.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		eventDropped(ctx, err, o, "Cordon Migrations")
		return nil
	}
	return unfinished(l.Items, v1alpha1.TriggerCordon)
}

// unfinished are requests for the Migrations not in a terminal phase, of
// trigger only when trigger is set.
func unfinished(ms []v1alpha1.Migration, trigger v1alpha1.MigrationTrigger) []reconcile.Request {
	var out []reconcile.Request
	for _, m := range ms {
		if (trigger == "" || m.Spec.Trigger == trigger) && !isTerminal(m.Status.Phase) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
		}
	}
	return out
}

// eventDropped logs a watch event on o that enqueued nothing because the
// dependents (what) could not be listed.
func eventDropped(ctx context.Context, err error, o client.Object, what string) {
	klog.FromContext(ctx).Error(err, "Watch event dropped: cannot list the objects that depend on it",
		"object", klog.KObj(o), "type", fmt.Sprintf("%T", o), "dependents", what)
}
