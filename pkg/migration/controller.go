package migration

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// restoreKey is the OverridePolicy annotation naming the armed checkpoint.
const restoreKey = restore.AnnotationRestoredFrom

// Options configure the controller.
type Options struct {
	// SecretNamespace holds the registry credentials Secrets the controller
	// reads (named by the policies) to delete old images.
	SecretNamespace string
	// WatchClusters enables the cordon detector (needs Karmada's Cluster API).
	WatchClusters bool
	// ReconcileTimeout bounds every Reconcile (DefaultReconcileTimeout when
	// zero): a call that blocks (an API server or member that does not
	// answer) must fail and be retried, not stop its controller's worker.
	ReconcileTimeout time.Duration
}

// DefaultReconcileTimeout is Options.ReconcileTimeout's default: far longer
// than a round takes (a few API calls and registry deletes), short enough
// that a stuck round shows up as an error within minutes.
const DefaultReconcileTimeout = time.Minute

// Controller is what the reconcilers share.
type Controller struct {
	Client client.Client
	// Reader reads without the cache: Checkpoints and Migrations the
	// controller just created must be seen at once, or a second reconcile
	// would create duplicates.
	Reader client.Reader
	// Secrets reads registry credentials Secrets without a cache: the
	// shipped RBAC grants get on Secrets in one namespace only, and a
	// cached Get would start a cluster-wide Secret informer that is never
	// allowed to list, so the Get would block for ever.
	Secrets     client.Reader
	Pods        PodLister
	Recorder    record.EventRecorder
	DeleteImage func(ctx context.Context, image string, kc authn.Keychain) error
	Options     Options
	// Now is the clock (tests may set it).
	Now func() time.Time
}

func (c *Controller) reader() client.Reader {
	if c.Reader != nil {
		return c.Reader
	}
	return c.Client
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconcilers on a manager whose client
// talks to the Karmada API server. pods may be nil: Karmada's cluster
// proxy is used.
func SetupWithManager(mgr manager.Manager, pods PodLister, o Options) error {
	s := mgr.GetScheme()
	for _, add := range []func(*runtime.Scheme) error{policyv1alpha1.AddToScheme, workv1alpha2.AddToScheme, clusterv1alpha1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return fmt.Errorf("scheme: %w", err)
		}
	}
	if pods == nil {
		l, err := NewProxyPodLister(mgr.GetConfig())
		if err != nil {
			return err
		}
		pods = l
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = "stateshift-system"
	}
	c := &Controller{
		Client:      mgr.GetClient(),
		Reader:      mgr.GetAPIReader(),
		Secrets:     mgr.GetAPIReader(),
		Pods:        pods,
		Recorder:    mgr.GetEventRecorderFor("stateshift-migration"),
		DeleteImage: DeleteImage,
		Options:     o,
	}
	return c.SetupWithManager(mgr)
}

func (c *Controller) reconcileTimeout() time.Duration {
	if c.Options.ReconcileTimeout > 0 {
		return c.Options.ReconcileTimeout
	}
	return DefaultReconcileTimeout
}

// SetupWithManager registers c's reconcilers, each Reconcile bounded by
// the reconcile timeout.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	bounded := controller.Options{ReconciliationTimeout: c.reconcileTimeout()}
	if err := ctrl.NewControllerManagedBy(mgr).Named("stateshift-checkpointpolicy").WithOptions(bounded).
		For(&v1alpha1.CheckpointPolicy{}).
		Watches(&v1alpha1.Checkpoint{}, handler.EnqueueRequestsFromMapFunc(policyOfCheckpoint)).
		Watches(&workv1alpha2.ResourceBinding{}, handler.EnqueueRequestsFromMapFunc(c.policiesInNamespace)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(c.policiesInNamespace)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(c.policiesInNamespace)).
		Complete(PolicyReconciler{c}); err != nil {
		return err
	}
	migrations := ctrl.NewControllerManagedBy(mgr).Named("stateshift-migration").WithOptions(bounded).
		For(&v1alpha1.Migration{}).
		Watches(&v1alpha1.Checkpoint{}, handler.EnqueueRequestsFromMapFunc(c.unfinishedMigrationsInNamespace)).
		Watches(&workv1alpha2.ResourceBinding{}, handler.EnqueueRequestsFromMapFunc(c.unfinishedMigrationsInNamespace))
	if c.Options.WatchClusters {
		// An uncordon (or a cluster joining, leaving, being tainted or
		// relabelled) decides whether a Cordon Migration still has a move
		// to make: look at once, not at the next poll. Spec and label
		// changes only: a Cluster's status is rewritten every few seconds.
		migrations = migrations.Watches(&clusterv1alpha1.Cluster{}, handler.EnqueueRequestsFromMapFunc(c.unfinishedCordonMigrations),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})))
	}
	if err := migrations.Complete(MigrationReconciler{c}); err != nil {
		return err
	}
	if c.Options.WatchClusters {
		return ctrl.NewControllerManagedBy(mgr).Named("stateshift-cordon").WithOptions(bounded).
			For(&clusterv1alpha1.Cluster{}).
			Complete(ClusterReconciler{c})
	}
	return nil
}
