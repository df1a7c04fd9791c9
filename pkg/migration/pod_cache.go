package migration

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// PodCacheSyncTimeout bounds how long a first look at a namespace of a
// member waits for its pods to be listed.
const PodCacheSyncTimeout = 30 * time.Second

// CachedPodLister answers from one pod informer per member cluster and
// namespace, each listing and watching through Karmada's cluster proxy.
// A list per reconcile cost a proxy request per workload and cluster every
// time any object of a namespace changed (the controllers reconcile per
// policy); a watch costs one long request per namespace and member.
// Informers start on the first question about a namespace and live as
// long as the controller. A member whose watch is broken (lost, its API
// server down) answers an error, as the proxy itself would, instead of
// the pods it had before: a lost cluster's pods are not known to run.
type CachedPodLister struct {
	rest rest.Interface
	// SyncTimeout bounds how long a first look at a namespace of a member
	// waits for its pods to be listed (PodCacheSyncTimeout by default).
	SyncTimeout time.Duration
	// ctx is the manager's: informers stop with it. Nil until Start.
	ctx context.Context
	mu  sync.Mutex
	// informers are keyed by "<cluster>/<namespace>".
	informers map[string]*memberInformer
}

// NewCachedPodLister builds the lister over the Karmada API server's
// config. Add it to the manager (it is a Runnable).
func NewCachedPodLister(cfg *rest.Config) (*CachedPodLister, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("karmada cluster proxy client: %w", err)
	}
	return &CachedPodLister{rest: cs.CoreV1().RESTClient(), SyncTimeout: PodCacheSyncTimeout, informers: map[string]*memberInformer{}}, nil
}

// Start implements manager.Runnable: it keeps the context the informers
// run under until the manager stops.
func (l *CachedPodLister) Start(ctx context.Context) error {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
	<-ctx.Done()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica may read pods.
func (l *CachedPodLister) NeedLeaderElection() bool { return false }

// Pods implements PodLister.
func (l *CachedPodLister) Pods(ctx context.Context, cluster, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
	pi, err := l.informerFor(cluster, namespace)
	if err != nil {
		return nil, err
	}
	if err := pi.synced(ctx, l.SyncTimeout); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, o := range pi.informer.GetStore().List() {
		if p := o.(*corev1.Pod); selector.Matches(labels.Set(p.Labels)) {
			out = append(out, *p.DeepCopy())
		}
	}
	return out, nil
}

func (l *CachedPodLister) informerFor(cluster, namespace string) (*memberInformer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return nil, errors.New("the pod cache has not started yet")
	}
	key := cluster + "/" + namespace
	if pi := l.informers[key]; pi != nil {
		return pi, nil
	}
	pi := newMemberInformer(memberWatch{
		rest:      l.rest,
		path:      proxyPath(cluster, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/pods"),
		object:    &corev1.Pod{},
		newList:   func() runtime.Object { return &corev1.PodList{} },
		transform: trimPod,
	}, fmt.Sprintf("pods of namespace %s in cluster %s (through the Karmada proxy)", namespace, cluster))
	go pi.informer.RunWithContext(l.ctx)
	l.informers[key] = pi
	klog.FromContext(l.ctx).V(2).Info("Watching pods through the cluster proxy", "cluster", cluster, "namespace", namespace)
	return pi, nil
}

// trimPod drops what no controller reads, so the cache stays small.
func trimPod(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Spec.Volumes = nil
	}
	return o, nil
}
