package migration

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
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
	informers map[string]*podInformer
}

type podInformer struct {
	informer toolscache.SharedIndexInformer
	mu       sync.Mutex
	// broken is the last watch error, cleared when a list or watch
	// succeeds again.
	broken error
}

// NewCachedPodLister builds the lister over the Karmada API server's
// config. Add it to the manager (it is a Runnable).
func NewCachedPodLister(cfg *rest.Config) (*CachedPodLister, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("karmada cluster proxy client: %w", err)
	}
	return &CachedPodLister{rest: cs.CoreV1().RESTClient(), SyncTimeout: PodCacheSyncTimeout, informers: map[string]*podInformer{}}, nil
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
	if err := pi.synced(ctx, cluster, namespace, l.SyncTimeout); err != nil {
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

func (l *CachedPodLister) informerFor(cluster, namespace string) (*podInformer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return nil, errors.New("the pod cache has not started yet")
	}
	key := cluster + "/" + namespace
	if pi := l.informers[key]; pi != nil {
		return pi, nil
	}
	pi := &podInformer{}
	pi.informer = toolscache.NewSharedIndexInformer(l.listWatch(pi, cluster, namespace), &corev1.Pod{}, 0, toolscache.Indexers{})
	_ = pi.informer.SetTransform(trimPod)
	_ = pi.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *toolscache.Reflector, err error) {
		pi.setBroken(err)
		toolscache.DefaultWatchErrorHandler(ctx, r, err)
	})
	go pi.informer.RunWithContext(l.ctx)
	l.informers[key] = pi
	klog.FromContext(l.ctx).V(2).Info("Watching pods through the cluster proxy", "cluster", cluster, "namespace", namespace)
	return pi, nil
}

// listWatch lists and watches one namespace of a member through the proxy.
func (l *CachedPodLister) listWatch(pi *podInformer, cluster, namespace string) *toolscache.ListWatch {
	path := fmt.Sprintf("/apis/cluster.karmada.io/v1alpha1/clusters/%s/proxy/api/v1/namespaces/%s/pods",
		url.PathEscape(cluster), url.PathEscape(namespace))
	return &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := &corev1.PodList{}
			err := l.rest.Get().AbsPath(path).VersionedParams(&o, metav1.ParameterCodec).Do(ctx).Into(list)
			pi.setBroken(err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.Watch = true
			w, err := l.rest.Get().AbsPath(path).VersionedParams(&o, metav1.ParameterCodec).Watch(ctx)
			pi.setBroken(err)
			return w, err
		},
	}
}

func (pi *podInformer) setBroken(err error) {
	pi.mu.Lock()
	pi.broken = err
	pi.mu.Unlock()
}

// synced waits (bounded) for the first list and says whether the watch
// works now.
func (pi *podInformer) synced(ctx context.Context, cluster, namespace string, timeout time.Duration) error {
	if !pi.informer.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if !toolscache.WaitForCacheSync(wctx.Done(), pi.informer.HasSynced) {
			return fmt.Errorf("pods of namespace %s in cluster %s: not listed through the Karmada proxy within %s (%v)",
				namespace, cluster, timeout, pi.lastError())
		}
	}
	if err := pi.lastError(); err != nil {
		return fmt.Errorf("pods of namespace %s in cluster %s: the watch through the Karmada proxy is broken: %w", namespace, cluster, err)
	}
	return nil
}

func (pi *podInformer) lastError() error {
	pi.mu.Lock()
	defer pi.mu.Unlock()
	return pi.broken
}

// trimPod drops what no controller reads, so the cache stays small.
func trimPod(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Spec.Volumes = nil
	}
	return o, nil
}
