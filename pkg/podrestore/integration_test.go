package podrestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/testenv"
)

// counting counts the API server's calls, to show matchConditions keep
// every other pod away from the webhook.
type counting struct {
	admission.Handler
	calls atomic.Int64
}

func (c *counting) Handle(ctx context.Context, req admission.Request) admission.Response {
	c.calls.Add(1)
	return c.Handler.Handle(ctx, req)
}

// TestPodRestoreWebhook runs the webhook as the member's API server calls
// it: a real kube-apiserver with artifacts/agent/pod-restore-webhook.yaml
// (matchConditions, failurePolicy, namespaceSelector as shipped), the
// handler reading workloads as the stateshift-pod-restore ServiceAccount
// with artifacts/agent/pod-restore-rbac.yaml only.
func TestPodRestoreWebhook(t *testing.T) {
	env, reader := shippedEnv(t)
	ctx := t.Context()
	c := env.Client
	// The images as the agent would have pushed them, from namespace shop.
	images := fakeImages{
		ckpt0: checkpointimage.Annotations(checkpointimage.Source{Container: "app", Pod: "db-0", Namespace: "shop"}),
		ckpt1: checkpointimage.Annotations(checkpointimage.Source{Container: "app", Pod: "db-1", Namespace: "shop"}),
	}
	h := &counting{Handler: &Handler{Reader: reader, Images: images}}
	stop := serve(t, env, h)

	ns := env.Namespace(t, "shop")
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: original}}},
			},
		},
	}
	create(t, c, sts)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: sts.Spec.Template,
		},
	}
	deploy.Spec.Template.Labels = map[string]string{"app": "web"}
	create(t, c, deploy)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-7f9c", OwnerReferences: []metav1.OwnerReference{controllerRef("Deployment", deploy.Name, deploy.UID)}},
		Spec:       appsv1.ReplicaSetSpec{Selector: deploy.Spec.Selector, Template: deploy.Spec.Template},
	}
	create(t, c, rs)

	// A pod of the StatefulSet, as its controller creates it.
	stsPod := func(name string) *corev1.Pod {
		p := restoredPod(name, nil)
		p.Namespace = ns
		p.OwnerReferences = []metav1.OwnerReference{controllerRef("StatefulSet", sts.Name, sts.UID)}
		return p
	}
	created := func(p *corev1.Pod) *corev1.Pod {
		t.Helper()
		create(t, c, p)
		return p
	}

	t.Run("pods without a restore never reach the webhook", func(t *testing.T) {
		before := h.calls.Load()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain", Annotations: map[string]string{"team": "x"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: original}}}}
		created(p)
		if n := h.calls.Load() - before; n != 0 || p.Spec.Containers[0].Image != original {
			t.Fatalf("webhook called %d times, image %s", n, p.Spec.Containers[0].Image)
		}
	})
	t.Run("each StatefulSet pod restores its own checkpoint", func(t *testing.T) {
		for name, want := range map[string]string{"db-0": ckpt0, "db-1": ckpt1} {
			p := created(stsPod(name))
			if got := p.Spec.Containers[0].Image; got != want {
				t.Errorf("%s runs %s, want its own checkpoint %s", name, got, want)
			}
			if p.Annotations[restore.AnnotationPodImages] != "" || !strings.Contains(p.Annotations[restore.AnnotationRestoredImages], want) {
				t.Errorf("%s annotations %v", name, p.Annotations)
			}
		}
	})
	t.Run("a pod without a checkpoint starts cold", func(t *testing.T) {
		p := created(stsPod("db-2"))
		if p.Spec.Containers[0].Image != original || !strings.Contains(p.Annotations[restore.AnnotationColdStart], `no checkpoint of pod "db-2"`) {
			t.Fatalf("db-2 image %s annotations %v", p.Spec.Containers[0].Image, p.Annotations)
		}
	})
	t.Run("after the restore completed, a re-created pod starts cold", func(t *testing.T) {
		annotate(t, c, sts, restore.AnnotationRestoreCompleted, "db-0-ckpt")
		if err := c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-1"}}, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		p := created(stsPod("db-1"))
		if p.Spec.Containers[0].Image != original || !strings.Contains(p.Annotations[restore.AnnotationColdStart], "restore once") {
			t.Fatalf("re-created db-1 image %s annotations %v", p.Spec.Containers[0].Image, p.Annotations)
		}
	})
	t.Run("Deployment pods: restore, then cold once completed", func(t *testing.T) {
		rsPod := func(name string) *corev1.Pod {
			p := restoredPod(name, map[string]string{restore.AnnotationPodImages: ""})
			p.Namespace = ns
			p.OwnerReferences = []metav1.OwnerReference{controllerRef("ReplicaSet", rs.Name, rs.UID)}
			return p
		}
		if p := created(rsPod("web-7f9c-aaaaa")); p.Spec.Containers[0].Image != ckpt0 {
			t.Fatalf("first pod runs %s, want the checkpoint", p.Spec.Containers[0].Image)
		}
		annotate(t, c, deploy, restore.AnnotationRestoreCompleted, "db-0-ckpt")
		if p := created(rsPod("web-7f9c-bbbbb")); p.Spec.Containers[0].Image != original {
			t.Fatalf("pod after completion runs %s, want %s", p.Spec.Containers[0].Image, original)
		}
	})
	t.Run("broken restore annotations are refused with the reason", func(t *testing.T) {
		p := stsPod("db-3")
		p.OwnerReferences = nil // db's restore completed above: a cold start would not read pod-images
		p.Annotations[restore.AnnotationPodImages] = `{"db-3":{"app":"registry.example.com/ckpt/db:latest"}}`
		err := c.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), "not by digest") || !strings.Contains(err.Error(), "pods.restore.stateshift.io") {
			t.Fatalf("create: %v", err)
		}
	})
	t.Run("webhook down: restored pods wait, other pods do not", func(t *testing.T) {
		stop()
		err := c.Create(ctx, stsPod("db-4"))
		if err == nil || !strings.Contains(err.Error(), "pods.restore.stateshift.io") {
			t.Fatalf("restored pod created with the webhook down: %v", err)
		}
		created(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain-2"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: original}}}})
	})
}

// shippedEnv starts a real kube-apiserver with the shipped pod-restore
// webhook configuration (its clientConfig pointed at serve's address) and
// RBAC, and returns a client that acts as the webhook's ServiceAccount.
func shippedEnv(t *testing.T) (*testenv.Env, client.Client) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{WebhookPaths: []string{filepath.Join(testenv.Root(), "artifacts", "agent", "pod-restore-webhook.yaml")}})
	env.Namespace(t, "stateshift-system")
	applyYAML(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "agent", "pod-restore-rbac.yaml"))
	asSA := rest.CopyConfig(env.Config)
	asSA.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:stateshift-system:stateshift-pod-restore",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:stateshift-system", "system:authenticated"},
	}
	c, err := client.New(asSA, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env, c
}

// fakeImages answers manifest annotations from memory: the images of this
// test live in no registry (registry.example.com is never contacted).
type fakeImages map[string]map[string]string

func (f fakeImages) Annotations(_ context.Context, image string) (map[string]string, error) {
	a, ok := f[image]
	if !ok {
		return nil, fmt.Errorf("manifest unknown: %s", image)
	}
	return a, nil
}

func controllerRef(kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes}
}

// serve runs the handler where the API server was told to call it and
// returns a function that stops it.
func serve(t *testing.T, env *testenv.Env, h admission.Handler) func() {
	t.Helper()
	w := env.Webhook
	srv := webhook.NewServer(webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir})
	srv.Register(Path, &admission.Webhook{Handler: h})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	addr := net.JoinHostPort(w.LocalServingHost, strconv.Itoa(w.LocalServingPort))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("webhook server on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var stopped atomic.Bool
	stop := func() {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("webhook server: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func create(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(t.Context(), o); err != nil {
		t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

func annotate(t *testing.T, c client.Client, o client.Object, k, v string) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v)))
	if err := c.Patch(t.Context(), o, patch); err != nil {
		t.Fatalf("annotate %s: %v", o.GetName(), err)
	}
}

// applyYAML creates every object of a multi-document YAML file.
func applyYAML(t *testing.T, c client.Client, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(t.Context(), u); err != nil {
			t.Fatalf("%s: create %v: %v", path, u.Object["kind"], err)
		}
	}
}
