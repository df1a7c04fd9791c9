package migration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/test/testenv"
)

// memberProxy plays Karmada's cluster proxy for one member ("m1"): it
// forwards /apis/cluster.karmada.io/v1alpha1/clusters/m1/proxy/... to a
// real API server. down makes it answer 503 and cut the open watches, as
// when the member is lost.
type memberProxy struct {
	down     atomic.Bool
	mu       sync.Mutex
	inFlight map[*http.Request]context.CancelFunc
	requests atomic.Int64
}

func (m *memberProxy) serve(t *testing.T, member *rest.Config) *httptest.Server {
	target, err := url.Parse(member.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(member)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.FlushInterval = -1 // stream watch events at once
	const prefix = "/apis/cluster.karmada.io/v1alpha1/clusters/m1/proxy"
	m.inFlight = map[*http.Request]context.CancelFunc{}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.Error(w, "no such cluster", http.StatusNotFound)
			return
		}
		if m.down.Load() {
			http.Error(w, "cluster m1 is unreachable", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		r = r.WithContext(ctx)
		m.mu.Lock()
		m.inFlight[r] = cancel
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.inFlight, r)
			m.mu.Unlock()
			cancel()
		}()
		r.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
		rp.ServeHTTP(w, r)
	}))
}

// lose cuts the member off: new requests fail, open watches end.
func (m *memberProxy) lose() {
	m.down.Store(true)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cancel := range m.inFlight {
		cancel()
	}
}

func runningPod(ns, name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "main", Image: "example.com/app:1"}}},
	}
}

// TestCachedPodListerWatchesThroughTheProxy: the controller's pod cache
// lists and watches a member's namespace through the cluster proxy (one
// list and one watch, whatever the questions), sees new pods without
// asking again, answers an error while the member is lost instead of its
// last pods, and recovers when it is back.
func TestCachedPodListerWatchesThroughTheProxy(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "pod-cache")
	for _, p := range []*corev1.Pod{runningPod(ns, "db-0", "db"), runningPod(ns, "web-0", "web")} {
		if err := env.Client.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	proxy := &memberProxy{}
	srv := proxy.serve(t, env.Config)
	defer srv.Close()
	l, err := NewCachedPodLister(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	l.SyncTimeout = 5 * time.Second
	if _, err := l.Pods(t.Context(), "m1", ns, labels.Everything()); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("before Start: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = l.Start(ctx) }()
	db := labels.SelectorFromSet(labels.Set{"app": "db"})
	eventuallyPods(t, l, ns, db, "db-0")

	// Questions are answered from the watch: a hundred cost no request.
	before := proxy.requests.Load()
	for range 100 {
		if _, err := l.Pods(t.Context(), "m1", ns, db); err != nil {
			t.Fatal(err)
		}
	}
	if n := proxy.requests.Load() - before; n > 1 {
		t.Fatalf("100 questions cost %d proxy requests", n)
	}
	if err := env.Client.Create(t.Context(), runningPod(ns, "db-1", "db")); err != nil {
		t.Fatal(err)
	}
	eventuallyPods(t, l, ns, db, "db-0,db-1")

	proxy.lose()
	eventually(t, 30*time.Second, "a lost member answers an error", func() (bool, string) {
		_, err := l.Pods(t.Context(), "m1", ns, db)
		return err != nil && strings.Contains(err.Error(), "broken"), fmt.Sprint(err)
	})
	// Bound to a node, a pod goes only when its kubelet confirms; there is
	// none: delete at once.
	if err := env.Client.Delete(t.Context(), runningPod(ns, "db-1", "db"), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	proxy.down.Store(false)
	eventuallyPods(t, l, ns, db, "db-0")

	if _, err := l.Pods(t.Context(), "m2", ns, db); err == nil || !strings.Contains(err.Error(), "not listed") {
		t.Fatalf("unknown cluster: %v", err)
	}
}

func eventuallyPods(t *testing.T, l *CachedPodLister, ns string, sel labels.Selector, want string) {
	t.Helper()
	eventually(t, 30*time.Second, "pods "+want, func() (bool, string) {
		pods, err := l.Pods(t.Context(), "m1", ns, sel)
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
		}
		sort.Strings(names)
		return strings.Join(names, ",") == want, strings.Join(names, ",")
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, timeout, last)
}
