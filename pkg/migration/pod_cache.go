package migration

import (
	"context"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
	memberInformers
}

// NewCachedPodLister builds the lister over the Karmada API server's
// config. Add it to the manager (it is a Runnable).
func NewCachedPodLister(cfg *rest.Config) (*CachedPodLister, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("karmada cluster proxy client: %w", err)
	}
	return &CachedPodLister{rest: cs.CoreV1().RESTClient(), SyncTimeout: PodCacheSyncTimeout, memberInformers: newMemberInformers("the pod cache")}, nil
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
	return l.get(cluster, namespace, func() (*memberInformer, error) {
		return newMemberInformer(memberWatch{
			rest:      l.rest,
			path:      proxyPath(cluster, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/pods"),
			object:    &corev1.Pod{},
			newList:   func() runtime.Object { return &corev1.PodList{} },
			transform: trimPod,
		}, fmt.Sprintf("pods of namespace %s in cluster %s (through the Karmada proxy)", namespace, cluster)), nil
	})
}

// trimPod drops what no controller reads, so the cache stays small.
func trimPod(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Spec.Volumes = nil
	}
	return o, nil
}
