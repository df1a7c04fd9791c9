package nodesim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/registry"
	"github.com/stateshift/stateshift/test/testenv"
)

// harness is one API server, one registry with authentication, and two
// simulated nodes: one that restores and one that cannot.
type harness struct {
	env      *testenv.Env
	cs       kubernetes.Interface
	reg      *registry.Registry
	node     *Node
	cannot   *Node
	ns       string
	allowed  string // token of a ServiceAccount allowed nodes/checkpoint create
	denied   string // token of one that is not
	deniedSA string
}

func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newHarness(t *testing.T) *harness {
	env := testenv.Start(t)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{env: env, cs: cs, reg: registry.Start(t, registry.WithAuth("puller", "s3cret-pull"))}
	authFile := filepath.Join(t.TempDir(), "auth.json")
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret-pull"))
	if err := os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, h.reg.Host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	h.node = h.startNode(t, "sim-a", "127.0.0.2", Restore, authFile)
	h.cannot = h.startNode(t, "sim-b", "127.0.0.3", CannotRestore, authFile)
	h.ns = env.Namespace(t, "nodesim-test")
	h.allowed = h.serviceAccountToken(t, "checkpointer", true)
	h.denied = h.serviceAccountToken(t, "nobody", false)
	h.deniedSA = "system:serviceaccount:" + h.ns + ":nobody"
	return h
}

func (h *harness) startNode(t *testing.T, name, ip string, mode RestoreMode, authFile string) *Node {
	t.Helper()
	return h.startNodeWith(t, name, ip, mode, RegistryOptions{AuthFile: authFile})
}

// startNodeWith starts a node pulling with registries.
func (h *harness) startNodeWith(t *testing.T, name, ip string, mode RestoreMode, registries RegistryOptions) *Node {
	t.Helper()
	dir := t.TempDir()
	n, err := New(Config{
		NodeName: name, IP: ip, Port: freePort(t, ip), KubeConfig: h.env.Config,
		CheckpointDir: filepath.Join(dir, "checkpoints"), DataDir: filepath.Join(dir, "data"),
		StateBytes: 256 << 10, Tick: 50 * time.Millisecond, RestoreMode: mode,
		Registries:            registries,
		RuntimeRequestTimeout: time.Second, HeartbeatInterval: time.Second,
		BackoffInitial: 200 * time.Millisecond, BackoffMax: time.Second,
	})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", name, err)
		}
	})
	wctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node %s stopped: %v", name, err)
	case <-wctx.Done():
		t.Fatalf("node %s not ready", name)
	}
	return n
}

// serviceAccountToken makes a ServiceAccount, optionally allowed to
// checkpoint through a ClusterRole, and returns a token for it.
func (h *harness) serviceAccountToken(t *testing.T, name string, allow bool) string {
	t.Helper()
	ctx := t.Context()
	if _, err := h.cs.CoreV1().ServiceAccounts(h.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if allow {
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "nodesim-test-" + name},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/checkpoint"}, Verbs: []string{"create"}}},
		}
		if _, err := h.cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "nodesim-test-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: h.ns}},
		}
		if _, err := h.cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := h.cs.CoreV1().ServiceAccounts(h.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	return tr.Status.Token
}

// grantGet also lets the checkpointer get nodes/checkpoint, so a GET passes
// the authorization filter and reaches the router.
func (h *harness) grantGet(t *testing.T) {
	t.Helper()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "nodesim-test-get-checkpoint"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/checkpoint"}, Verbs: []string{"get"}}},
	}
	if _, err := h.cs.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "checkpointer", Namespace: h.ns}},
	}
	if _, err := h.cs.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer's cache within a moment.
	eventually(t, 10*time.Second, "get allowed", func() (bool, string) {
		code, body, _ := kubeletCall(t, h.node, http.MethodGet, h.allowed, "/checkpoint/"+h.ns+"/source/app")
		return code != http.StatusForbidden, body
	})
}

type podOpt func(*corev1.Pod)

func withVolume(name, path string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path})
	}
}

func withAnnotation(k, v string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{k: v} }
}

func (h *harness) createPod(t *testing.T, node *Node, name, image string, opts ...podOpt) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: corev1.PodSpec{
			NodeName:                     node.Name(),
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "app", Image: image}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	p, err := h.cs.CoreV1().Pods(h.ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	return p
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
}

func (h *harness) waitRunning(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 30*time.Second, "pod "+name+" running", func() (bool, string) {
		p, err := h.cs.CoreV1().Pods(h.ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		return p.Status.Phase == corev1.PodRunning && ready, fmt.Sprintf("phase %s, status %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	return pod
}

// waitWaiting waits for the pod's container to wait with reason.
func (h *harness) waitWaiting(t *testing.T, name, reason string) corev1.ContainerStateWaiting {
	t.Helper()
	var w corev1.ContainerStateWaiting
	eventually(t, 30*time.Second, "pod "+name+" waiting with "+reason, func() (bool, string) {
		p, err := h.cs.CoreV1().Pods(h.ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == reason {
			w = *p.Status.ContainerStatuses[0].State.Waiting
			return true, ""
		}
		return false, fmt.Sprintf("%+v", p.Status.ContainerStatuses)
	})
	return w
}

// events lists the Events with reason on a pod of the test namespace.
func (h *harness) events(t *testing.T, pod, reason string) []corev1.Event {
	t.Helper()
	l, err := h.cs.CoreV1().Events(h.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []corev1.Event
	for _, e := range l.Items {
		if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == pod && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event with reason on a pod and returns the first.
func (h *harness) waitEvent(t *testing.T, pod, reason string) corev1.Event {
	t.Helper()
	var ev corev1.Event
	eventually(t, 10*time.Second, reason+" event on "+pod, func() (bool, string) {
		evs := h.events(t, pod, reason)
		if len(evs) == 0 {
			return false, "none"
		}
		ev = evs[0]
		return true, ""
	})
	return ev
}

// kubeletPOST calls a node's kubelet API as the agent does.
func kubeletCall(t *testing.T, n *Node, method, token, path string) (int, string, http.Header) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(n.CAPEM()) {
		t.Fatal("node CA PEM holds no certificate")
	}
	// Verify through the file too: that is what --kubelet-ca reads.
	if b, err := os.ReadFile(n.CAFile()); err != nil || string(b) != string(n.CAPEM()) {
		t.Fatalf("CA file %s: %v", n.CAFile(), err)
	}
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(t.Context(), method, n.Endpoint()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// fileLayer is an uncompressed layer read from a file: its digest is the
// archive's sha256, so a registry holds the archive byte for byte.
type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func newFileLayer(t *testing.T, path string) *fileLayer {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hsh := sha256.New()
	n, err := io.Copy(hsh, f)
	if err != nil {
		t.Fatal(err)
	}
	return &fileLayer{path: path, size: n, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hsh.Sum(nil))}}
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }

// pushImage pushes a one-layer OCI image of archive, with the checkpoint
// annotations of container when annotate, and returns repository@digest.
func (h *harness) pushImage(t *testing.T, repo, archive string, src checkpointimage.Source, annotate bool) string {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, newFileLayer(t, archive))
	if err != nil {
		t.Fatal(err)
	}
	if annotate {
		img = mutate.Annotations(img, checkpointimage.Annotations(src)).(v1.Image)
	}
	ref, err := name.ParseReference(h.reg.Host + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret-pull"})
	if err := remote.Write(ref, img, auth, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Name() + "@" + d.String()
}
