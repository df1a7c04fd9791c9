package migration

import (
	"context"
	"fmt"
	"net/url"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// LabelRecordUID is set on the members' copies of Checkpoints delivered by
// stateshift (--checkpoint-delivery=proxy): the UID of the Checkpoint in
// the Karmada API they copy. A copy whose record is gone, or is another
// object of the same name, is deleted; Checkpoints without the label (a
// person's, or Karmada's propagated ones) are never touched.
const LabelRecordUID = v1alpha1.KeyPrefix + "record-uid"

// MemberCheckpoints reads and writes the members' copies of Checkpoints:
// one informer per member cluster and namespace lists and watches the
// copies stateshift delivered, and creates and deletes go to the member
// (through Karmada's cluster proxy in a federation). Informers start on
// the first question about a namespace of a member and live as long as
// the controller; a member whose watch is broken answers an error.
type MemberCheckpoints struct {
	// clusterREST is the client of cluster's API and the prefix of every
	// path in it ("" for a member's own API server).
	clusterREST func(cluster string) (rest.Interface, string, error)
	// SyncTimeout bounds how long a first look at a namespace of a member
	// waits for its Checkpoints to be listed.
	SyncTimeout time.Duration
	// RequestTimeout bounds one create or delete.
	RequestTimeout time.Duration
	// changes carries the copies that changed, as their names.
	changes chan event.GenericEvent

	memberInformers
}

// memberRequestTimeout bounds one write to a member's copy.
const memberRequestTimeout = 30 * time.Second

// NewProxyMemberCheckpoints delivers through Karmada's cluster proxy with
// the Karmada API server's config. Add it to the manager (a Runnable).
func NewProxyMemberCheckpoints(cfg *rest.Config) (*MemberCheckpoints, error) {
	r, err := checkpointREST(cfg)
	if err != nil {
		return nil, fmt.Errorf("karmada cluster proxy client: %w", err)
	}
	return newMemberCheckpoints(func(cluster string) (rest.Interface, string, error) {
		return r, proxyPath(cluster, ""), nil
	}), nil
}

// NewDirectMemberCheckpoints delivers with one config per member cluster
// (its own API server), for a controller that has members' credentials.
func NewDirectMemberCheckpoints(members map[string]*rest.Config) (*MemberCheckpoints, error) {
	clients := map[string]rest.Interface{}
	for name, cfg := range members {
		r, err := checkpointREST(cfg)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		clients[name] = r
	}
	return newMemberCheckpoints(func(cluster string) (rest.Interface, string, error) {
		r, ok := clients[cluster]
		if !ok {
			return nil, "", fmt.Errorf("no client for cluster %s", cluster)
		}
		return r, "", nil
	}), nil
}

func newMemberCheckpoints(clusterREST func(string) (rest.Interface, string, error)) *MemberCheckpoints {
	return &MemberCheckpoints{clusterREST: clusterREST, SyncTimeout: PodCacheSyncTimeout, RequestTimeout: memberRequestTimeout,
		changes: make(chan event.GenericEvent, 1024), memberInformers: newMemberInformers("the member Checkpoint cache")}
}

// checkpointREST is a client of stateshift.io/v1alpha1 at cfg's server.
func checkpointREST(cfg *rest.Config) (rest.Interface, error) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.WithoutConversionCodecFactory{CodecFactory: serializer.NewCodecFactory(s)}
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader delivers, so only it watches.
func (m *MemberCheckpoints) NeedLeaderElection() bool { return true }

func collectionPath(namespace string) string {
	return "/apis/" + v1alpha1.GroupVersion.Group + "/" + v1alpha1.GroupVersion.Version + "/namespaces/" + url.PathEscape(namespace) + "/checkpoints"
}

// Get is the copy of namespace/name in cluster from the cache, nil when
// there is none.
func (m *MemberCheckpoints) Get(ctx context.Context, cluster, namespace, name string) (*v1alpha1.Checkpoint, error) {
	mi, err := m.informerFor(cluster, namespace)
	if err != nil {
		return nil, err
	}
	if err := mi.synced(ctx, m.SyncTimeout); err != nil {
		return nil, err
	}
	o, ok, err := mi.informer.GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	return o.(*v1alpha1.Checkpoint).DeepCopy(), nil
}

// Copies are the copies named namespace/name in the members watched so
// far, by cluster (a broken watch answers what it had: the caller only
// deletes what it finds).
func (m *MemberCheckpoints) Copies(namespace, name string) map[string]*v1alpha1.Checkpoint {
	out := map[string]*v1alpha1.Checkpoint{}
	for _, c := range m.clustersWatching(namespace) {
		mi, err := m.informerFor(c, namespace)
		if err != nil {
			continue
		}
		if o, ok, _ := mi.informer.GetStore().GetByKey(namespace + "/" + name); ok {
			out[c] = o.(*v1alpha1.Checkpoint).DeepCopy()
		}
	}
	return out
}

// Unreachable says whether the watch of namespace in cluster is broken
// now (its last list or watch failed): a write there would fail too.
func (m *MemberCheckpoints) Unreachable(cluster, namespace string) bool {
	mi := m.running(cluster, namespace)
	return mi != nil && mi.lastError() != nil
}

// Create writes cp to cluster. An existing copy of the same record is
// success.
func (m *MemberCheckpoints) Create(ctx context.Context, cluster string, cp *v1alpha1.Checkpoint) error {
	r, prefix, err := m.clusterREST(cluster)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
	defer cancel()
	err = r.Post().AbsPath(prefix + collectionPath(cp.Namespace)).Body(cp).Do(ctx).Error()
	if apierrors.IsAlreadyExists(err) {
		return nil // the informer brings it; a stale one is the caller's to replace
	}
	if err != nil {
		return fmt.Errorf("create Checkpoint %s/%s in cluster %s: %w", cp.Namespace, cp.Name, cluster, err)
	}
	return nil
}

// Delete removes the copy with uid from cluster; one already gone (or
// replaced by another object of its name) is success.
func (m *MemberCheckpoints) Delete(ctx context.Context, cluster, namespace, name string, uid types.UID) error {
	r, prefix, err := m.clusterREST(cluster)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
	defer cancel()
	opts := &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}
	err = r.Delete().AbsPath(prefix + collectionPath(namespace) + "/" + url.PathEscape(name)).Body(opts).Do(ctx).Error()
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete Checkpoint %s/%s in cluster %s: %w", namespace, name, cluster, err)
	}
	return nil
}

func (m *MemberCheckpoints) informerFor(cluster, namespace string) (*memberInformer, error) {
	return m.get(cluster, namespace, func() (*memberInformer, error) {
		r, prefix, err := m.clusterREST(cluster)
		if err != nil {
			return nil, err
		}
		mi := newMemberInformer(memberWatch{
			rest:      r,
			path:      prefix + collectionPath(namespace),
			object:    &v1alpha1.Checkpoint{},
			newList:   func() runtime.Object { return &v1alpha1.CheckpointList{} },
			selector:  LabelManagedBy + "=" + ManagedBy + "," + LabelRecordUID,
			transform: trimCheckpoint,
		}, fmt.Sprintf("Checkpoints of namespace %s in cluster %s", namespace, cluster))
		_, _ = mi.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: m.notify, DeleteFunc: m.notify,
			UpdateFunc: func(_, o any) { m.notify(o) },
		})
		return mi, nil
	})
}

// notify enqueues the record of a copy that changed.
func (m *MemberCheckpoints) notify(o any) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if cp, ok := o.(*v1alpha1.Checkpoint); ok {
		m.changes <- event.GenericEvent{Object: &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: cp.Namespace, Name: cp.Name}}}
	}
}

// trimCheckpoint drops what the delivery does not read.
func trimCheckpoint(o any) (any, error) {
	if cp, ok := o.(*v1alpha1.Checkpoint); ok {
		cp.ManagedFields = nil
	}
	return o, nil
}

// copyListPage bounds one page of a member-wide list of copies.
const copyListPage = 500

// WatchNamespacesWithCopies lists cluster's delivered copies in every
// namespace and watches each namespace that has one; it returns how many
// namespaces that is. Why: informers start from records, so a copy whose
// record was deleted while no controller ran, in a namespace with no
// record left, would never be looked at. The new watch's first list
// enqueues its copies, and Reconcile deletes those without a record.
func (m *MemberCheckpoints) WatchNamespacesWithCopies(ctx context.Context, cluster string) (int, error) {
	r, prefix, err := m.clusterREST(cluster)
	if err != nil {
		return 0, err
	}
	namespaces := map[string]bool{}
	opts := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy + "," + LabelRecordUID, Limit: copyListPage}
	for {
		list := &v1alpha1.CheckpointList{}
		lctx, cancel := context.WithTimeout(ctx, m.RequestTimeout)
		err := r.Get().AbsPath(prefix+"/apis/"+v1alpha1.GroupVersion.String()+"/checkpoints").
			VersionedParams(&opts, metav1.ParameterCodec).Do(lctx).Into(list)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("list Checkpoints in cluster %s: %w", cluster, err)
		}
		for i := range list.Items {
			namespaces[list.Items[i].Namespace] = true
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			break
		}
	}
	for ns := range namespaces {
		if _, err := m.informerFor(cluster, ns); err != nil {
			return 0, err
		}
	}
	return len(namespaces), nil
}
