package podrestore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/restore"
)

// The webhook configuration has two entries for the pods of a restored
// template. The first, failurePolicy Fail, is called for a pending
// restore: when the webhook is down such a pod waits (its controller
// retries) instead of starting without its checkpoint. The second,
// failurePolicy Ignore, is called once the workload's restore completed:
// the webhook only records why the pod starts cold, and a pod created
// while the webhook is down starts from the template as it is, which runs
// the workload's own images. So a restored workload depends on the webhook
// only until its restore completed, not for as long as its template names
// the restore. The two conditions below tell them apart by the completed
// restores of the member, which ScopeReconciler writes into them.
const (
	// PendingCondition is the Fail entry's matchCondition: the pod's
	// restore is not a completed one.
	PendingCondition = "restore-pending"
	// CompletedCondition is the Ignore entry's matchCondition: the pod's
	// restore completed.
	CompletedCondition = "restore-completed"
	// MaxConditionLength bounds each condition written, below the API
	// server's limit on a CEL expression (100,000 code points): about 1,500
	// restores of typical names, 300 of the longest ones. Restores left out
	// keep calling the Fail entry: safe, only not free of the webhook.
	MaxConditionLength = 90000
	// scopeResync re-reads everything although nothing changed: it puts the
	// conditions back after someone else wrote the configuration.
	scopeResync = 5 * time.Minute
)

// restoredFromCEL is the pod's restore as its namespace and checkpoint,
// the key CompletedRestores lists. Only for a pod that carries the
// annotation (hasRestoreCEL).
const (
	hasRestoreCEL    = "has(object.metadata.annotations) && '" + restore.AnnotationRestoredFrom + "' in object.metadata.annotations"
	restoredFromCEL  = "(request.namespace + '/' + object.metadata.annotations['" + restore.AnnotationRestoredFrom + "'])"
	noRestoreCELFail = "!has(object.metadata.annotations) || !('" + restore.AnnotationRestoredFrom + "' in object.metadata.annotations)"
)

// PendingExpression is the Fail entry's condition for the completed
// restores keys ("namespace/checkpoint"): true unless the pod's restore is
// one of them. Each operand guards the next, so that it never fails to
// evaluate (an error would apply the failure policy).
func PendingExpression(keys []string) string {
	return noRestoreCELFail + " || !(" + restoredFromCEL + " in " + celList(keys) + ")"
}

// CompletedExpression is the Ignore entry's condition: the pod's restore
// is one of the completed restores keys.
func CompletedExpression(keys []string) string {
	return hasRestoreCEL + " && " + restoredFromCEL + " in " + celList(keys)
}

// celList is a CEL list literal of keys, which CompletedRestores checked
// to be names (no quote or backslash can occur).
func celList(keys []string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = "'" + k + "'"
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// CompletedRestores lists, sorted, the restores that completed on this
// member as "namespace/checkpoint": a workload whose restore-completed
// names the checkpoint its restored-from names. A member user can write
// these annotations on their own workload; the key carries the workload's
// namespace, which the pod's admission request names too, so that such a
// record affects no other namespace's pods, and values that are not names
// are left out (they could not be quoted safely). As many as fit
// MaxConditionLength; the second result says how many were left out.
func CompletedRestores(workloads []metav1.PartialObjectMetadata) ([]string, int) {
	seen := map[string]bool{}
	for i := range workloads {
		w := &workloads[i]
		from := w.Annotations[restore.AnnotationRestoredFrom]
		if from == "" || w.Annotations[restore.AnnotationRestoreCompleted] != from {
			continue
		}
		if len(validation.IsDNS1123Label(w.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(from)) > 0 {
			continue
		}
		seen[w.Namespace+"/"+from] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The longer condition is PendingExpression; each key adds itself,
	// two quotes and a separator.
	size := len(PendingExpression(nil))
	for i, k := range keys {
		if size += len(k) + 4; size > MaxConditionLength {
			return keys[:i], len(keys) - i
		}
	}
	return keys, 0
}

// SetScope writes the conditions for keys into every entry of cfg that
// has them (entries without them are left as the operator wrote them),
// and says whether anything changed.
func SetScope(cfg *admissionregistrationv1.MutatingWebhookConfiguration, keys []string) bool {
	want := map[string]string{PendingCondition: PendingExpression(keys), CompletedCondition: CompletedExpression(keys)}
	changed := false
	for i := range cfg.Webhooks {
		for j := range cfg.Webhooks[i].MatchConditions {
			mc := &cfg.Webhooks[i].MatchConditions[j]
			if expr, ours := want[mc.Name]; ours && mc.Expression != expr {
				mc.Expression = expr
				changed = true
			}
		}
	}
	return changed
}

// ScopeReconciler keeps the pod-restore webhook configuration's
// conditions in step with the member's completed restores. It is their only
// writer; it reads the workloads' metadata from a cache (a metadata-only
// watch of Deployments and StatefulSets) and the configuration uncached
// (RBAC lets it read and update that one object by name).
type ScopeReconciler struct {
	Client    client.Client
	APIReader client.Reader
	// Configuration is the MutatingWebhookConfiguration's name.
	Configuration string
}

// Reconcile implements reconcile.Reconciler. Every request means "look
// again": the result depends on all workloads, not on the one that moved.
func (r *ScopeReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var workloads []metav1.PartialObjectMetadata
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		l := &metav1.PartialObjectMetadataList{}
		l.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(kind + "List"))
		if err := r.Client.List(ctx, l); err != nil {
			return reconcile.Result{}, fmt.Errorf("list %ss: %w", kind, err)
		}
		workloads = append(workloads, l.Items...)
	}
	keys, left := CompletedRestores(workloads)
	log := klog.FromContext(ctx)
	if left > 0 {
		log.Info("Completed restores left out of the webhook's conditions: their pods keep calling it with failurePolicy Fail", "listed", len(keys), "leftOut", left)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: r.Configuration}, cfg); err != nil {
		return reconcile.Result{}, fmt.Errorf("get MutatingWebhookConfiguration %s: %w", r.Configuration, err)
	}
	if !SetScope(cfg, keys) {
		return reconcile.Result{RequeueAfter: scopeResync}, nil
	}
	if err := r.Client.Update(ctx, cfg); err != nil {
		return reconcile.Result{}, fmt.Errorf("update MutatingWebhookConfiguration %s: %w", r.Configuration, err)
	}
	log.V(1).Info("Pod-restore webhook conditions updated", "configuration", r.Configuration, "completedRestores", len(keys))
	return reconcile.Result{RequeueAfter: scopeResync}, nil
}

// SetupWithManager watches the metadata of Deployments and StatefulSets
// whose restore annotations appear, change or go, and reconciles one key.
func (r *ScopeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: r.Configuration}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("pod-restore-scope")
	for _, obj := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}} {
		b = b.WatchesMetadata(obj, one, builder.WithPredicates(restoreRecordChanged()))
	}
	// The first reconcile does not wait for a workload event: a member with
	// no restored workload still gets its conditions written.
	if err := mgr.Add(startupKick{r: r}); err != nil {
		return err
	}
	return b.Complete(r)
}

// restoreRecordChanged passes workloads whose restored-from or
// restore-completed annotations appear, change or go.
func restoreRecordChanged() predicate.Predicate {
	record := func(o client.Object) string {
		if o == nil {
			return ""
		}
		a := o.GetAnnotations()
		return a[restore.AnnotationRestoredFrom] + "\x00" + a[restore.AnnotationRestoreCompleted]
	}
	const none = "\x00"
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return record(e.Object) != none },
		UpdateFunc:  func(e event.UpdateEvent) bool { return record(e.ObjectOld) != record(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return record(e.Object) != none },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// startupKick reconciles once when the manager starts (after the caches
// synced), then lets the resync and the watches take over.
type startupKick struct{ r *ScopeReconciler }

func (k startupKick) Start(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("pod-restore-scope")
	for {
		_, err := k.r.Reconcile(klog.NewContext(ctx, log), reconcile.Request{})
		if err == nil {
			return nil
		}
		log.Error(err, "Writing the pod-restore webhook's conditions; retrying in 10s")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
		}
	}
}

// NeedLeaderElection: every replica may write the same conditions.
func (startupKick) NeedLeaderElection() bool { return false }
