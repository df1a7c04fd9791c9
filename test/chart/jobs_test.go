package chart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/test/testenv"
)

// jobRoot stands in for the Job pod's file system: the objects Secret, the
// kubeconfig Secret and the certificate Secrets are files under it.
type jobRoot struct {
	dir, kubeconfig string
}

func newJobRoot(t *testing.T, r rendered, kubeconfig string) jobRoot {
	t.Helper()
	root := jobRoot{dir: t.TempDir(), kubeconfig: kubeconfig}
	secret := r.find(t, "Secret", "stateshift-karmada-objects")
	files, _, _ := unstructured.NestedStringMap(secret.Object, "stringData")
	for name, body := range files {
		writeFile(t, filepath.Join(root.dir, "objects", name), body)
	}
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root.dir, "kubeconfig", "kubeconfig"), string(b))
	return root
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs a Job's script with this machine's sh and the test kubectl,
// its absolute paths moved under the root.
func (j jobRoot) run(t *testing.T, r rendered, job string) string {
	t.Helper()
	script := typed[batchv1.Job](t, r.find(t, "Job", job)).Spec.Template.Spec.Containers[0].Args[0]
	script = strings.NewReplacer("/etc/karmada/kubeconfig/", j.dir+"/kubeconfig/", "/tmp/objects", j.dir+"/tmp/objects",
		" /objects/", " "+j.dir+"/objects/", "/certs/", j.dir+"/certs/").Replace(script)
	// Longer than one of the script's own waits (kubectl delete --wait
	// --timeout=300s), so that a slow deletion on a loaded machine ends
	// with the script's message rather than a kill.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", script)
	cmd.Env = append(os.Environ(), "PATH="+testenv.KubeBinDir(t)+":"+busyboxApplets(t)+":"+os.Getenv("PATH"), "HOME="+j.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", job, err, out)
	}
	return string(out)
}

// busyboxApplets is a folder with the busybox applets the Jobs' image has
// and this machine may not (nc): links to Debian's busybox-static, which
// hack/install-debs.sh installs.
func busyboxApplets(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (Debian busybox-static, hack/install-debs.sh): %v", err)
	}
	dir := t.TempDir()
	for _, applet := range []string{"nc"} {
		if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// listeningURL is an interpreter URL on a loopback port that accepts
// connections (and closes them): the apply Job waits for the webhook to
// answer there before it applies the interpreter configuration.
func listeningURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return "https://" + l.Addr().String() + "/interpreter"
}

var (
	interpreterConfigGVK = schema.GroupVersionKind{Group: "config.karmada.io", Version: "v1alpha1", Kind: "ResourceInterpreterWebhookConfiguration"}
	cppGVK               = schema.GroupVersionKind{Group: "policy.karmada.io", Version: "v1alpha1", Kind: "ClusterPropagationPolicy"}
	daemonSetGVK         = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	crdGVK               = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
)

func getObject(env *testenv.Env, gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, u)
}

// TestJobScriptsApplyAndDelete runs the apply and delete Jobs' scripts
// against a real kube-apiserver with Karmada's CRDs: apply creates every
// Karmada-side object and is idempotent (upgrade), delete removes them all
// (uninstall) and tolerates running twice.
func TestJobScriptsApplyAndDelete(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: karmadaCRDDirs(t)})
	kubeconfig := writeKubeconfig(t, env)
	// The loopback values: the apply Job does not wait on a Service.
	r := render(t, "-f", filepath.Join(ChartDir(), "ci", "loopback-values.yaml"), "--set", "interpreter.url="+listeningURL(t))
	root := newJobRoot(t, r, kubeconfig)

	for i := 0; i < 2; i++ {
		root.run(t, r, "stateshift-karmada-apply")
	}
	present := []struct {
		gvk       schema.GroupVersionKind
		namespace string
		name      string
	}{
		{interpreterConfigGVK, "", "stateshift-interpreter"},
		{cppGVK, "", "stateshift-members"},
		{daemonSetGVK, ns, "stateshift-checkpoint-agent"},
		{crdGVK, "", "checkpoints.stateshift.io"},
	}
	for _, p := range present {
		u, err := getObject(env, p.gvk, p.namespace, p.name)
		if err != nil {
			t.Fatalf("after apply, %s %s: %v", p.gvk.Kind, p.name, err)
		}
		if u.GetLabels()["stateshift.io/release"] != "stateshift" {
			t.Errorf("%s %s labels %v", p.gvk.Kind, p.name, u.GetLabels())
		}
	}

	for i := 0; i < 2; i++ {
		root.run(t, r, "stateshift-karmada-delete")
	}
	for _, p := range present {
		if _, err := getObject(env, p.gvk, p.namespace, p.name); !apierrors.IsNotFound(err) {
			t.Errorf("after delete, %s %s: %v", p.gvk.Kind, p.name, err)
		}
	}
}

// TestCertManagerJobKeepsOverlap runs the cert-manager mode's apply
// script: the bundle in the Karmada API becomes cert-manager's CA followed
// by the one Karmada trusted before, stays so while the CA does not change,
// and a second change drops the oldest CA.
func TestCertManagerJobKeepsOverlap(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: karmadaCRDDirs(t)})
	kubeconfig := writeKubeconfig(t, env)
	r := render(t, "-f", filepath.Join(ChartDir(), "ci", "loopback-values.yaml"), "--set", "certs.mode=cert-manager",
		"--set", "interpreter.url="+listeningURL(t))
	root := newJobRoot(t, r, kubeconfig)
	caA, caB, caC := selfSignedCA(t, "a"), selfSignedCA(t, "b"), selfSignedCA(t, "c")
	setCA := func(ca string) {
		writeFile(t, filepath.Join(root.dir, "certs", "interpreter", "ca.crt"), ca)
		writeFile(t, filepath.Join(root.dir, "certs", "pod-restore", "tls.crt"), ca)
		writeFile(t, filepath.Join(root.dir, "certs", "pod-restore", "tls.key"), "key")
	}
	bundle := func() string {
		t.Helper()
		u, err := getObject(env, interpreterConfigGVK, "", "stateshift-interpreter")
		if err != nil {
			t.Fatal(err)
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks[1:] {
			if b, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle"); b != hooks[0].(map[string]any)["clientConfig"].(map[string]any)["caBundle"] {
				t.Errorf("webhooks disagree on the caBundle")
			}
		}
		b, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
		return strings.TrimSpace(string(decodeB64(t, b)))
	}
	steps := []struct {
		ca   string
		want []string
	}{
		{caA, []string{caA}},
		{caA, []string{caA}},
		{caB, []string{caB, caA}},
		{caB, []string{caB, caA}},
		{caC, []string{caC, caB}},
	}
	for i, s := range steps {
		setCA(s.ca)
		root.run(t, r, "stateshift-karmada-apply")
		if got, want := bundle(), strings.Join(s.want, ""); !samePEMs(got, want) {
			t.Fatalf("step %d: bundle\n%s\nwant\n%s", i, got, want)
		}
	}
	secret, err := getObject(env, schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, ns, "stateshift-pod-restore-certs")
	if err != nil {
		t.Fatal(err)
	}
	if crt, _, _ := unstructured.NestedString(secret.Object, "data", "tls.crt"); strings.TrimSpace(string(decodeB64(t, crt))) != strings.TrimSpace(caC) {
		t.Error("the pod-restore Secret in the Karmada API is not cert-manager's certificate")
	}
}

// samePEMs: the same certificates in the same order, whatever the
// whitespace between them.
func samePEMs(a, b string) bool {
	blocks := func(s string) (out []string) {
		for rest := []byte(s); ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				return out
			}
			out = append(out, string(block.Bytes))
		}
	}
	x, y := blocks(a), blocks(b)
	return len(x) > 0 && strings.Join(x, "|") == strings.Join(y, "|")
}

func selfSignedCA(t *testing.T, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
