package migration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// restoreKey is the OverridePolicy annotation naming the armed checkpoint.
const restoreKey = restore.AnnotationRestoredFrom

// Options configure the controller.
type Options struct {
	// SecretNamespace holds the registry credentials Secrets the controller
	// reads (named by the policies) to delete old images. It is the
	// controller's own namespace, not necessarily the leader-election one.
	SecretNamespace string
	// WatchClusters enables the cordon detector (needs Karmada's Cluster API).
	WatchClusters bool
	// ReconcileTimeout bounds every Reconcile (DefaultReconcileTimeout when
	// zero): a call that blocks (an API server or member that does not
	// answer) must fail and be retried, not stop its controller's worker.
	ReconcileTimeout time.Duration
	// Controllers turns controllers on and off by name, as Karmada's
	// --controllers: "*" is every controller, "-name" turns one off, "name"
	// turns one on. Empty means "*".
	Controllers []string
	// RequireRepositoryAllowlist refuses policies in namespaces without
	// AnnotationAllowedRepositories (otherwise such a namespace may use
	// any repository).
	RequireRepositoryAllowlist bool
	// ConcurrentSyncs is how many objects each controller reconciles at
	// once, and how many workloads of one policy a round handles at once
	// (DefaultConcurrentSyncs when zero). A round's API calls wait on the
	// Karmada API server more than they use CPU: one at a time, a policy
	// of 100 workloads took 46 s on a busy control plane.
	ConcurrentSyncs int
	// ScheduledCheckpointDeferral is how long a scheduled checkpoint that
	// falls due may wait while Migrations are in progress anywhere in the
	// federation (0: never). A move is foreground work (a workload is down
	// or held until it ends) and each of its steps is a write to the
	// Karmada API server, which a round of scheduled checkpoints (about 16
	// writes each, most of them Karmada's own) saturates: in a storm of
	// 100 failovers beside 900 protected workloads, karmada-scheduler
	// placed the moved bindings 4-6 s apart. The bound keeps a move that
	// never ends from stopping protection.
	ScheduledCheckpointDeferral time.Duration
	// CheckpointDelivery is how a Checkpoint reaches the member that runs
	// its pod: DeliveryPropagation (a PropagationPolicy per namespace and
	// cluster; Karmada's binding, Work and status reflection) or
	// DeliveryProxy (the checkpointdelivery controller writes the member's
	// copy through Karmada's cluster proxy and mirrors its status).
	// Empty means DeliveryPropagation.
	CheckpointDelivery string
	// Members reads and writes the members' copies with DeliveryProxy
	// (through Karmada's cluster proxy when nil).
	Members *MemberCheckpoints
}

// The ways a Checkpoint reaches its member (Options.CheckpointDelivery).
const (
	DeliveryPropagation = "propagation"
	DeliveryProxy       = "proxy"
)

// ValidateCheckpointDelivery checks an Options.CheckpointDelivery value.
func ValidateCheckpointDelivery(d string) error {
	switch d {
	case "", DeliveryPropagation, DeliveryProxy:
		return nil
	}
	return fmt.Errorf("checkpoint delivery %q: must be %s or %s", d, DeliveryPropagation, DeliveryProxy)
}

// DefaultScheduledCheckpointDeferral is the flag default of
// Options.ScheduledCheckpointDeferral: a data-loss window grows by at most
// this much while moves run.
const DefaultScheduledCheckpointDeferral = 2 * time.Minute

// DefaultConcurrentSyncs is Options.ConcurrentSyncs's default.
const DefaultConcurrentSyncs = 4

// DefaultReconcileTimeout is Options.ReconcileTimeout's default: far longer
// than a round takes (a few API calls and registry deletes), short enough
// that a stuck round shows up as an error within minutes.
const DefaultReconcileTimeout = time.Minute

// DefaultSecretNamespace is Options.SecretNamespace's default.
const DefaultSecretNamespace = "stateshift-system"

// Controller is what the reconcilers share: clients and settings, no state.
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
	// CheckPull checks that a destination can pull a checkpoint image.
	CheckPull ImagePullChecker
	Options   Options
	// Now is the clock (tests may set it).
	Now func() time.Time
	// policyStatusWrites holds when each CheckpointPolicy's status was
	// last written (by UID), to space them (statusWait). Memory only: a
	// restarted controller writes at once.
	policyStatusWrites sync.Map
	// retentionRuns holds when each CheckpointPolicy's round last ran
	// retention (by UID): in a storm it waits (retentionDue).
	retentionRuns sync.Map
	// plansCreated and movesRecorded: the restore plans and detected moves
	// this process created that its cache may not show yet.
	plansCreated recentlyCreated[*policyv1alpha1.OverridePolicy]
	// checkpointPasses and restorePlanPasses space the two controllers'
	// passes of a policy while a member is lost (stormPassSpacing).
	checkpointPasses, restorePlanPasses passPacer
	movesRecorded                       recentlyCreated[*v1alpha1.Migration]
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

func (c *Controller) reconcileTimeout() time.Duration {
	if c.Options.ReconcileTimeout > 0 {
		return c.Options.ReconcileTimeout
	}
	return DefaultReconcileTimeout
}

func (c *Controller) concurrentSyncs() int {
	if c.Options.ConcurrentSyncs > 0 {
		return c.Options.ConcurrentSyncs
	}
	return DefaultConcurrentSyncs
}

// bounded are the controller-runtime options every reconciler runs with.
// Each object is still reconciled by one worker at a time: the workqueue
// never hands out a key that is being processed.
func (c *Controller) bounded() controller.Options {
	return controller.Options{ReconciliationTimeout: c.reconcileTimeout(), MaxConcurrentReconciles: c.concurrentSyncs()}
}

// SetupFunc registers one controller's reconcilers on a manager.
type SetupFunc func(mgr manager.Manager, c *Controller) error

// Controllers maps each controller's name to its setup. Each controller is
// the only writer of one kind of object:
//
//	checkpoints    Checkpoints (scheduled and fresh ones, retention), the PropagationPolicies carrying
//	               them and the pull Secrets to members, and the CheckpointPolicy status
//	restoreplan    the restore OverridePolicy of each protected workload
//	migrations     Migration status and the binding's scheduling hold and placement
//	movedetection  Migrations (created for moves seen on bindings and cordoned clusters)
//	checkpointplacement  the placement of Checkpoints' bindings (CheckpointSchedulerName)
//	checkpointdelivery   with DeliveryProxy: the members' copies of Checkpoints and the status of
//	                     the Checkpoints in the Karmada API (mirrored from the copies)
var Controllers = map[string]SetupFunc{
	"checkpointdelivery":  setupCheckpointDelivery,
	"checkpointplacement": setupCheckpointPlacement,
	"checkpoints":         setupCheckpoints,
	"restoreplan":         setupRestorePlan,
	"migrations":          setupMigrations,
	"movedetection":       setupMoveDetection,
}

// ControllerNames lists the registered controllers, sorted.
func ControllerNames() []string {
	out := make([]string, 0, len(Controllers))
	for n := range Controllers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// IsControllerEnabled reads a --controllers list as Karmada does: an
// explicit "-name" turns name off, an explicit "name" turns it on, and
// otherwise "*" (or an empty list) turns every controller on.
func IsControllerEnabled(name string, list []string) bool {
	if len(list) == 0 {
		return true
	}
	star := false
	for _, c := range list {
		switch c {
		case name:
			return true
		case "-" + name:
			return false
		case "*":
			star = true
		}
	}
	return star
}

// ValidateControllers rejects names in a --controllers list that no
// controller has (a typo would otherwise silently turn nothing off).
func ValidateControllers(list []string) error {
	for _, c := range list {
		n := strings.TrimPrefix(c, "-")
		if _, ok := Controllers[n]; !ok && c != "*" {
			return fmt.Errorf("unknown controller %q in --controllers (known: %s, *)", c, strings.Join(ControllerNames(), ", "))
		}
	}
	return nil
}

// SetupWithManager registers the enabled controllers on a manager whose
// client talks to the Karmada API server. pods may be nil: pods are
// watched through Karmada's cluster proxy (CachedPodLister).
func SetupWithManager(mgr manager.Manager, pods PodLister, o Options) error {
	if err := ValidateControllers(o.Controllers); err != nil {
		return err
	}
	s := mgr.GetScheme()
	for _, add := range []func(*runtime.Scheme) error{policyv1alpha1.AddToScheme, workv1alpha2.AddToScheme, clusterv1alpha1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return fmt.Errorf("scheme: %w", err)
		}
	}
	if pods == nil {
		l, err := NewCachedPodLister(mgr.GetConfig())
		if err != nil {
			return err
		}
		if err := mgr.Add(l); err != nil {
			return fmt.Errorf("pod cache: %w", err)
		}
		pods = l
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = DefaultSecretNamespace
	}
	if err := ValidateCheckpointDelivery(o.CheckpointDelivery); err != nil {
		return err
	}
	if o.CheckpointDelivery == DeliveryProxy && o.Members == nil {
		m, err := NewProxyMemberCheckpoints(mgr.GetConfig())
		if err != nil {
			return err
		}
		o.Members = m
	}
	if o.Members != nil {
		if err := mgr.Add(o.Members); err != nil {
			return fmt.Errorf("member Checkpoint cache: %w", err)
		}
	}
	c := &Controller{
		Client:      mgr.GetClient(),
		Reader:      mgr.GetAPIReader(),
		Secrets:     mgr.GetAPIReader(),
		Pods:        pods,
		Recorder:    mgr.GetEventRecorderFor("stateshift-migration"),
		DeleteImage: DeleteImage,
		CheckPull:   CheckImagePullable,
		Options:     o,
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Checkpoint{}, checkpointWorkloadIndex, indexCheckpointWorkload); err != nil {
		return fmt.Errorf("index Checkpoints by workload: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Migration{}, migrationWorkloadIndex, indexMigrationWorkload); err != nil {
		return fmt.Errorf("index Migrations by workload: %w", err)
	}
	// The gauges of observed state read the manager's cache.
	observedState.source.Store(&stateSource{reader: mgr.GetCache(), elected: mgr.Elected(), now: c.now})
	for _, name := range ControllerNames() {
		if !IsControllerEnabled(name, o.Controllers) {
			continue
		}
		if err := Controllers[name](mgr, c); err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
	}
	return nil
}
