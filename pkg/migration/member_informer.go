package migration

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// memberInformer lists and watches one kind in one namespace of one member
// cluster (through Karmada's cluster proxy, or a member's own API server),
// and remembers whether its watch works: a member whose watch is broken
// (lost, its API server down) must answer an error, not what it had
// before.
type memberInformer struct {
	informer toolscache.SharedIndexInformer
	// what names the informer's objects in errors ("pods of namespace
	// shop in cluster member1").
	what string
	mu   sync.Mutex
	// broken is the last list or watch error, cleared when one succeeds.
	broken error
}

// memberWatch is what a memberInformer lists and watches.
type memberWatch struct {
	rest rest.Interface
	// path is the collection's absolute path.
	path string
	// object and newList are the kind's object and an empty list of it.
	object  runtime.Object
	newList func() runtime.Object
	// selector narrows the list and watch (a label selector), if set.
	selector string
	// transform trims what the cache keeps (nil: everything).
	transform toolscache.TransformFunc
}

// newMemberInformer builds the informer; run it with RunWithContext.
func newMemberInformer(w memberWatch, what string) *memberInformer {
	mi := &memberInformer{what: what}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = w.selector
			list := w.newList()
			err := w.rest.Get().AbsPath(w.path).VersionedParams(&o, metav1.ParameterCodec).Do(ctx).Into(list)
			mi.setBroken(err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.Watch = true
			o.LabelSelector = w.selector
			wi, err := w.rest.Get().AbsPath(w.path).VersionedParams(&o, metav1.ParameterCodec).Watch(ctx)
			mi.setBroken(err)
			return wi, err
		},
	}
	mi.informer = toolscache.NewSharedIndexInformer(lw, w.object, 0, toolscache.Indexers{})
	if w.transform != nil {
		_ = mi.informer.SetTransform(w.transform)
	}
	_ = mi.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *toolscache.Reflector, err error) {
		mi.setBroken(err)
		toolscache.DefaultWatchErrorHandler(ctx, r, err)
	})
	return mi
}

func (mi *memberInformer) setBroken(err error) {
	mi.mu.Lock()
	mi.broken = err
	mi.mu.Unlock()
}

// synced waits (bounded) for the first list and says whether the watch
// works now.
func (mi *memberInformer) synced(ctx context.Context, timeout time.Duration) error {
	if !mi.informer.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if !toolscache.WaitForCacheSync(wctx.Done(), mi.informer.HasSynced) {
			return fmt.Errorf("%s: not listed within %s (%v)", mi.what, timeout, mi.lastError())
		}
	}
	if err := mi.lastError(); err != nil {
		return fmt.Errorf("%s: the watch is broken: %w", mi.what, err)
	}
	return nil
}

func (mi *memberInformer) lastError() error {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	return mi.broken
}

// proxyPath is the path of a member's API path through Karmada's cluster
// proxy (served by karmada-aggregated-apiserver): the controller needs
// only the Karmada API and its RBAC on clusters/proxy, never a member's
// credentials.
func proxyPath(cluster, apiPath string) string {
	return "/apis/cluster.karmada.io/v1alpha1/clusters/" + url.PathEscape(cluster) + "/proxy" + apiPath
}

// memberInformers holds one memberInformer per member cluster and
// namespace: each starts on the first question about its namespace and
// runs under the manager's context (Start, a manager.Runnable) until the
// manager stops.
type memberInformers struct {
	// name says in errors what the informers are ("the pod cache").
	name string
	// ctx is the manager's: informers stop with it. Nil until Start.
	ctx context.Context
	mu  sync.Mutex
	// byKey are keyed by "<cluster>/<namespace>".
	byKey map[string]*memberInformer
}

func newMemberInformers(name string) memberInformers {
	return memberInformers{name: name, byKey: map[string]*memberInformer{}}
}

// Start implements manager.Runnable: it keeps the context the informers
// run under until the manager stops.
func (s *memberInformers) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	<-ctx.Done()
	return nil
}

// get is the informer of cluster and namespace, built (not yet running:
// handlers may be added) and started on first use.
func (s *memberInformers) get(cluster, namespace string, build func() (*memberInformer, error)) (*memberInformer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return nil, fmt.Errorf("%s has not started yet", s.name)
	}
	key := cluster + "/" + namespace
	if mi := s.byKey[key]; mi != nil {
		return mi, nil
	}
	mi, err := build()
	if err != nil {
		return nil, err
	}
	go mi.informer.RunWithContext(s.ctx)
	s.byKey[key] = mi
	klog.FromContext(s.ctx).V(2).Info("Watching a member namespace", "informers", s.name, "cluster", cluster, "namespace", namespace)
	return mi, nil
}

// running is the informer of cluster and namespace if one was started.
func (s *memberInformers) running(cluster, namespace string) *memberInformer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[cluster+"/"+namespace]
}

// clustersWatching are the clusters whose namespace is watched, sorted.
func (s *memberInformers) clustersWatching(namespace string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for key := range s.byKey {
		if c, ns, _ := strings.Cut(key, "/"); ns == namespace {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}
