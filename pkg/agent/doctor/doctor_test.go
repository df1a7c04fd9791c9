package doctor

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/stateshift/stateshift/pkg/agent/kubelet"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/test/registry"
)

// kubeletAnswering starts a TLS server that answers every checkpoint call
// with code, and a client that trusts it.
func kubeletAnswering(t *testing.T, code int, body string) (*kubelet.Client, string, int) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pemOf(srv), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := kubelet.New(kubelet.Config{TokenFile: tok, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return c, host, p
}

func inputs(t *testing.T) Inputs {
	t.Helper()
	root := t.TempDir()
	ckpt := filepath.Join(root, "checkpoints")
	if err := os.Mkdir(ckpt, 0o700); err != nil {
		t.Fatal(err)
	}
	return Inputs{Buildah: "buildah", BuildahRoot: filepath.Join(root, "storage"), BuildahRunRoot: filepath.Join(root, "run"),
		StorageDriver: "vfs", CheckpointDir: ckpt}
}

func find(t *testing.T, rs []Result, name string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %q check in %+v", name, rs)
	return Result{}
}

// With everything in order every line is OK: real buildah, a kubelet that
// authorizes the probe (404 for the pod that does not exist), a registry
// that accepts the credentials.
func TestDoctorAllGood(t *testing.T) {
	reg := registry.Start(t, registry.WithAuth("pusher", "s3cret-doctor"))
	in := inputs(t)
	in.Kubelet, in.KubeletHost, in.KubeletPort = kubeletAnswering(t, http.StatusNotFound, "pod does not exist")
	in.Repository, in.Insecure = reg.Host+"/doctor/check", true
	in.Registry = creds(t, reg.Host, "pusher", "s3cret-doctor")
	path := "/mutate-pods"
	in.PodRestore = &admissionregistrationv1.MutatingWebhookConfiguration{Webhooks: []admissionregistrationv1.MutatingWebhook{{
		ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("pem"),
			Service: &admissionregistrationv1.ServiceReference{Namespace: "stateshift-system", Name: "stateshift-pod-restore", Path: &path}},
	}}}
	results := Run(context.Background(), in)
	var out bytes.Buffer
	if !Print(&out, results) {
		t.Fatalf("doctor failed:\n%s", out.String())
	}
	if len(results) != 8 || !strings.Contains(out.String(), "Service stateshift-system/stateshift-pod-restore/mutate-pods") || !strings.Contains(out.String(), "OK    kubelet") || !strings.Contains(out.String(), "buildah version") {
		t.Fatalf("unexpected report:\n%s", out.String())
	}
}

// Each broken piece gives a FAIL line with a fix, and never the password.
func TestDoctorSaysWhatIsWrong(t *testing.T) {
	reg := registry.Start(t, registry.WithAuth("pusher", "s3cret-doctor"))
	in := inputs(t)
	in.Buildah = "/nonexistent/buildah"
	if err := os.Chmod(in.CheckpointDir, 0o755); err != nil {
		t.Fatal(err)
	}
	in.Kubelet, in.KubeletHost, in.KubeletPort = kubeletAnswering(t, http.StatusForbidden, "Forbidden (user=x, verb=create, resource=nodes, subresource(s)=[checkpoint])")
	in.Repository, in.Insecure = reg.Host+"/doctor/check", true
	in.Registry = creds(t, reg.Host, "pusher", "wrong-doctor-password")
	results := Run(context.Background(), in)
	var out bytes.Buffer
	if Print(&out, results) {
		t.Fatalf("doctor passed a broken setup:\n%s", out.String())
	}
	for name, fix := range map[string]string{
		"buildah":           "--builders=native",
		"checkpoint folder": "chmod 0700",
		"kubelet":           "nodes/checkpoint",
		"registry":          "lacks push rights",
	} {
		r := find(t, results, name)
		if r.OK || !strings.Contains(r.Fix, fix) {
			t.Errorf("%s: %+v, want a FAIL whose fix says %q", name, r, fix)
		}
	}
	if r := find(t, results, "pod-restore webhook"); r.OK || !strings.Contains(r.Fix, "--webhook pod-restore") {
		t.Errorf("pod-restore webhook missing: %+v", r)
	}
	if strings.Contains(out.String(), "wrong-doctor-password") {
		t.Errorf("the password reached the report:\n%s", out.String())
	}
	// A kubelet that rejects the token and a missing checkpoint folder.
	in.Kubelet, in.KubeletHost, in.KubeletPort = kubeletAnswering(t, http.StatusUnauthorized, "Unauthorized")
	in.CheckpointDir = filepath.Join(t.TempDir(), "missing")
	results = Run(context.Background(), in)
	if r := find(t, results, "kubelet"); r.OK || !strings.Contains(r.Fix, "authentication-token-webhook") {
		t.Errorf("401: %+v", r)
	}
	if r := find(t, results, "checkpoint folder"); r.OK || !strings.Contains(r.Fix, "mount the kubelet's checkpoint folder") {
		t.Errorf("missing folder: %+v", r)
	}
	// The pod-restore webhook: registered without a CA bundle, or not
	// readable with the agent's RBAC.
	in.PodRestore = &admissionregistrationv1.MutatingWebhookConfiguration{Webhooks: []admissionregistrationv1.MutatingWebhook{{}}}
	if r := find(t, Run(context.Background(), in), "pod-restore webhook"); r.OK || !strings.Contains(r.Detail, "no caBundle") {
		t.Errorf("no caBundle: %+v", r)
	}
	in.PodRestore, in.PodRestoreErr = nil, apierrors.NewForbidden(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}, "stateshift-pod-restore", fmt.Errorf("no"))
	if r := find(t, Run(context.Background(), in), "pod-restore webhook"); r.OK || !strings.Contains(r.Fix, "ClusterRole") {
		t.Errorf("forbidden: %+v", r)
	}
}

func creds(t *testing.T, host, user, password string) *registryauth.Config {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "stateshift-system"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + host + `":{"username":"` + user + `","password":"` + password + `"}}}`)}}
	cfg, err := registryauth.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func pemOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
