package migration

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
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
