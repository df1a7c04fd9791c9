// Package testenv starts the real components tests run against: a
// kube-apiserver and etcd built from Go modules (hack/build-deps.sh), with
// stateshift's CRDs installed, through controller-runtime's envtest.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Root is the repository's top folder.
func Root() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var buildOnce sync.Once
var buildErr error

// KubeBinDir returns the folder with etcd, kube-apiserver and kubectl,
// building them with hack/build-deps.sh when they are not cached yet: a test
// that needs them builds them rather than skipping.
func KubeBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d
		}
	}
	buildOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(Root(), "hack", "build-deps.sh"), "kube")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("hack/build-deps.sh kube: %v", buildErr)
	}
	out, err := exec.Command("bash", "-c", ". "+filepath.Join(Root(), "hack", "lib.sh")+" && echo $KUBE_BIN").Output()
	if err != nil {
		t.Fatalf("locate kube binaries: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Scheme knows the Kubernetes built-in types, CRDs and stateshift's types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = stateshiftv1alpha1.AddToScheme(s)
	return s
}

// Env is a running API server.
type Env struct {
	Config *rest.Config
	Client client.Client
	// Webhook says where the API server expects the webhooks of
	// Options.WebhookPaths (LocalServingHost, LocalServingPort,
	// LocalServingCertDir with tls.crt and tls.key).
	Webhook *envtest.WebhookInstallOptions
	env     *envtest.Environment
}

// Options tune Start.
type Options struct {
	// ExtraCRDDirs are installed beside artifacts/crds (e.g. Karmada's CRDs).
	ExtraCRDDirs []string
	// WebhookPaths are admission webhook configurations (YAML) to install;
	// their clientConfig is pointed at a local server the test runs.
	WebhookPaths []string
}

// Start runs etcd and kube-apiserver with stateshift's CRDs and stops them
// when the test ends.
func Start(t testing.TB, opts ...Options) *Env {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: KubeBinDir(t),
		CRDDirectoryPaths:     append([]string{filepath.Join(Root(), "artifacts", "crds")}, o.ExtraCRDDirs...),
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: o.WebhookPaths, LocalServingHost: "127.0.0.1"},
	}
	cfg, err := e.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Logf("stop test API server: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return &Env{Config: cfg, Client: c, Webhook: &e.WebhookInstallOptions, env: e}
}

// Namespace creates a namespace for one test.
func (e *Env) Namespace(t testing.TB, name string) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := e.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}
