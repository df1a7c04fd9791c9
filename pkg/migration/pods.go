package migration

import (
	"context"
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodLister finds a workload's pods in a member cluster.
type PodLister interface {
	Pods(ctx context.Context, cluster, namespace string, selector labels.Selector) ([]corev1.Pod, error)
}

// ProxyPodLister lists pods through Karmada's cluster proxy
// (/apis/cluster.karmada.io/v1alpha1/clusters/<c>/proxy/...), served by
// karmada-aggregated-apiserver: the controller needs only the Karmada API
// and the RBAC verb get on clusters/proxy, never a member's credentials.
type ProxyPodLister struct {
	rest rest.Interface
}

// NewProxyPodLister builds a lister over the Karmada API server's config.
func NewProxyPodLister(cfg *rest.Config) (*ProxyPodLister, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("karmada cluster proxy client: %w", err)
	}
	return &ProxyPodLister{rest: cs.CoreV1().RESTClient()}, nil
}

// Pods implements PodLister.
func (l *ProxyPodLister) Pods(ctx context.Context, cluster, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
	var list corev1.PodList
	path := proxyPath(cluster, "/api/v1/namespaces/"+url.PathEscape(namespace)+"/pods")
	err := l.rest.Get().AbsPath(path).Param("labelSelector", selector.String()).Do(ctx).Into(&list)
	if err != nil {
		return nil, fmt.Errorf("list pods of %s/%s in cluster %s through the Karmada proxy: %w", namespace, selector, cluster, err)
	}
	return list.Items, nil
}

// ClientPodLister lists pods with one client per member cluster (direct
// member access, e.g. where the aggregated API server is not deployed).
type ClientPodLister map[string]client.Client

// Pods implements PodLister.
func (l ClientPodLister) Pods(ctx context.Context, cluster, namespace string, selector labels.Selector) ([]corev1.Pod, error) {
	c, ok := l[cluster]
	if !ok {
		return nil, fmt.Errorf("no client for cluster %s", cluster)
	}
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("list pods of %s/%s in cluster %s: %w", namespace, selector, cluster, err)
	}
	return list.Items, nil
}

// runningPods keeps the pods a checkpoint can be taken of.
func runningPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}
