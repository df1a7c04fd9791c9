package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/test/testenv"
)

func karmadaDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/karmada-io/karmada").Output()
	if err != nil {
		t.Fatalf("locate karmada module: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func writeKubeconfig(t testing.TB, env *testenv.Env) string {
	t.Helper()
	c := env.Config
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func runScript(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(testenv.Root(), "hack", "apply-interpreter-config.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var webhookConfigGVK = schema.GroupVersionKind{Group: "config.karmada.io", Version: "v1alpha1", Kind: "ResourceInterpreterWebhookConfiguration"}

func getConfig(t *testing.T, c client.Client) (*configv1alpha1.ResourceInterpreterWebhookConfiguration, string, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(webhookConfigGVK)
	if err := c.Get(context.Background(), client.ObjectKey{Name: "stateshift-interpreter"}, u); err != nil {
		return nil, "", err
	}
	typed := &configv1alpha1.ResourceInterpreterWebhookConfiguration{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
		t.Fatal(err)
	}
	return typed, u.GetResourceVersion(), nil
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verify checks the serving certificate in dir against the configuration's
// caBundle for the given host (DNS name or IP), as Karmada's client would.
func verify(t *testing.T, caBundle []byte, dir, host string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		t.Fatalf("caBundle is not PEM: %q", caBundle)
	}
	cert := readCert(t, filepath.Join(dir, "tls.crt"))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("verify for %s: %v", host, err)
	}
}

// TestApplyInterpreterConfig runs hack/apply-interpreter-config.sh against
// a real kube-apiserver with Karmada's config.karmada.io CRDs.
func TestApplyInterpreterConfig(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: []string{
		filepath.Join(karmadaDir(t), "charts", "karmada", "_crds", "bases", "config"),
	}})
	kubeconfig := writeKubeconfig(t, env)
	dir := filepath.Join(t.TempDir(), "certs")

	if out, err := runScript(t, kubeconfig, "--url", "https://127.0.0.1:8443/interpreter"); err == nil || !strings.Contains(out, "--cert-dir") {
		t.Fatalf("missing --cert-dir accepted: %v\n%s", err, out)
	}
	if out, err := runScript(t, kubeconfig, "--url", "http://127.0.0.1:8443/interpreter", "--cert-dir", dir); err == nil {
		t.Fatalf("plain http URL accepted:\n%s", out)
	}

	out, err := runScript(t, kubeconfig, "--url", "https://127.0.0.1:8443/interpreter", "--cert-dir", dir)
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	cfg, rv, err := getConfig(t, env.Client)
	if err != nil {
		t.Fatalf("configuration not applied: %v\n%s", err, out)
	}
	if len(cfg.Webhooks) != 2 {
		t.Fatalf("webhooks: %+v", cfg.Webhooks)
	}
	for _, w := range cfg.Webhooks {
		if w.ClientConfig.URL == nil || *w.ClientConfig.URL != "https://127.0.0.1:8443/interpreter" || w.ClientConfig.Service != nil {
			t.Fatalf("%s clientConfig: %+v", w.Name, w.ClientConfig)
		}
		if w.TimeoutSeconds == nil || *w.TimeoutSeconds != 3 || strings.Join(w.InterpreterContextVersions, ",") != "v1alpha1" {
			t.Fatalf("%s: timeout %v versions %v", w.Name, w.TimeoutSeconds, w.InterpreterContextVersions)
		}
		verify(t, w.ClientConfig.CABundle, dir, "127.0.0.1")
		verify(t, w.ClientConfig.CABundle, dir, "stateshift-interpreter-webhook.stateshift-system.svc")
	}
	workload, ckpt := cfg.Webhooks[0].Rules[0], cfg.Webhooks[1].Rules[0]
	if strings.Join(workload.Kinds, ",") != "StatefulSet,Deployment" || len(workload.Operations) != 7 ||
		strings.Join(ckpt.Kinds, ",") != "Checkpoint" || strings.Join(ckpt.APIGroups, ",") != "stateshift.io" || len(ckpt.Operations) != 2 {
		t.Fatalf("rules: %+v %+v", workload, ckpt)
	}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt", "ca.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st.Mode(), err)
		}
	}

	// Re-running changes nothing: same certificate, same object.
	serial := readCert(t, filepath.Join(dir, "tls.crt")).SerialNumber
	if out, err := runScript(t, kubeconfig, "--url", "https://127.0.0.1:8443/interpreter", "--cert-dir", dir); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if _, rv2, _ := getConfig(t, env.Client); rv2 != rv {
		t.Fatalf("second run changed the configuration: %s -> %s", rv, rv2)
	}
	if readCert(t, filepath.Join(dir, "tls.crt")).SerialNumber.Cmp(serial) != 0 {
		t.Fatal("second run replaced a valid certificate")
	}

	// A new host: the serving certificate is reissued by the same CA.
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if out, err := runScript(t, kubeconfig, "--url", "https://webhook.example.test:9443/interpreter", "--cert-dir", dir); err != nil {
		t.Fatalf("new host: %v\n%s", err, out)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("CA replaced")
	}
	cfg, _, _ = getConfig(t, env.Client)
	verify(t, cfg.Webhooks[0].ClientConfig.CABundle, dir, "webhook.example.test")
	if ip := readCert(t, filepath.Join(dir, "tls.crt")).IPAddresses; len(ip) != 0 {
		t.Fatalf("old IP SAN kept: %v", ip)
	}

	// Service mode: the Secret is created and the configuration points at the Service.
	if out, err := runScript(t, kubeconfig, "--service", "stateshift-system/stateshift-interpreter-webhook", "--cert-dir", dir); err != nil {
		t.Fatalf("service mode: %v\n%s", err, out)
	}
	cfg, _, _ = getConfig(t, env.Client)
	svc := cfg.Webhooks[1].ClientConfig.Service
	if svc == nil || svc.Namespace != "stateshift-system" || svc.Name != "stateshift-interpreter-webhook" || *svc.Path != "/interpreter" || cfg.Webhooks[1].ClientConfig.URL != nil {
		t.Fatalf("service clientConfig: %+v", cfg.Webhooks[1].ClientConfig)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "stateshift-system", Name: "stateshift-interpreter-webhook-certs"}, secret); err != nil {
		t.Fatal(err)
	}
	crt, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if secret.Type != corev1.SecretTypeTLS || !bytes.Equal(secret.Data["tls.crt"], crt) || len(secret.Data["tls.key"]) == 0 {
		t.Fatalf("secret %s", secret.Type)
	}
	verify(t, cfg.Webhooks[1].ClientConfig.CABundle, dir, "stateshift-interpreter-webhook.stateshift-system.svc.cluster.local")

	// --delete removes it, and deleting again is fine.
	for i := 0; i < 2; i++ {
		if out, err := runScript(t, kubeconfig, "--delete"); err != nil {
			t.Fatalf("delete: %v\n%s", err, out)
		}
	}
	if _, _, err := getConfig(t, env.Client); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}

	// Every manifest in artifacts/interpreter is accepted by a real API
	// server (schemas, RBAC references).
	kubectl := filepath.Join(testenv.KubeBinDir(t), "kubectl")
	apply := exec.Command(kubectl, "apply", "--server-side", "-f", filepath.Join(testenv.Root(), "artifacts", "interpreter"))
	apply.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply artifacts/interpreter: %v\n%s", err, out)
	}
}

// TestApplyPodRestoreConfig runs the same script in its member mode
// (--webhook pod-restore) against a real kube-apiserver: the member's
// MutatingWebhookConfiguration of artifacts/agent/pod-restore-webhook.yaml
// with its caBundle, the serving Secret, and --delete.
func TestApplyPodRestoreConfig(t *testing.T) {
	env := testenv.Start(t)
	kubeconfig := writeKubeconfig(t, env)
	dir := filepath.Join(t.TempDir(), "certs")
	if out, err := runScript(t, kubeconfig, "--webhook", "nonsense", "--delete"); err == nil || !strings.Contains(out, "--webhook must be") {
		t.Fatalf("unknown --webhook accepted: %v\n%s", err, out)
	}
	if out, err := runScript(t, kubeconfig, "--webhook", "pod-restore", "--service", "stateshift-system/stateshift-pod-restore", "--cert-dir", dir); err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	get := func() (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		return m, env.Client.Get(context.Background(), client.ObjectKey{Name: "stateshift-pod-restore"}, m)
	}
	m, err := get()
	if err != nil {
		t.Fatal(err)
	}
	// Two entries: a pending restore's pods (Fail) and a completed one's
	// (Ignore); both pointed at the Service, with the caBundle.
	if len(m.Webhooks) != 2 {
		t.Fatalf("webhooks: %+v", m.Webhooks)
	}
	for i, want := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		w := m.Webhooks[i]
		svc := w.ClientConfig.Service
		if svc == nil || svc.Namespace != "stateshift-system" || svc.Name != "stateshift-pod-restore" || svc.Path == nil || *svc.Path != "/mutate-pods" {
			t.Fatalf("%s clientConfig: %+v", w.Name, w.ClientConfig)
		}
		if w.FailurePolicy == nil || *w.FailurePolicy != want || len(w.MatchConditions) != 2 ||
			w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
			t.Fatalf("%s: failurePolicy %v (want %s) matchConditions %+v sideEffects %v", w.Name, w.FailurePolicy, want, w.MatchConditions, w.SideEffects)
		}
		verify(t, w.ClientConfig.CABundle, dir, "stateshift-pod-restore.stateshift-system.svc")
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "stateshift-system", Name: "stateshift-pod-restore-certs"}, secret); err != nil {
		t.Fatal(err)
	}
	if ca := readCert(t, filepath.Join(dir, "ca.crt")); ca.Subject.CommonName != "stateshift-pod-restore-webhook-ca" {
		t.Fatalf("CA %q", ca.Subject.CommonName)
	}
	if out, err := runScript(t, kubeconfig, "--webhook", "pod-restore", "--delete"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if _, err := get(); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	// Every manifest of artifacts/agent (the agent and the pod-restore
	// webhook) is accepted by a real API server.
	kubectl := filepath.Join(testenv.KubeBinDir(t), "kubectl")
	apply := exec.Command(kubectl, "apply", "--server-side", "-f", filepath.Join(testenv.Root(), "artifacts", "agent"))
	apply.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply artifacts/agent: %v\n%s", err, out)
	}
}
