package chart

import (
	"bytes"
	"context"
	"encoding/pem"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/stateshift/stateshift/test/testenv"
)

func karmadaCRDDirs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/karmada-io/karmada").Output()
	if err != nil {
		t.Fatalf("locate karmada module: %v", err)
	}
	base := filepath.Join(strings.TrimSpace(string(out)), "charts", "karmada", "_crds", "bases")
	return []string{filepath.Join(base, "config"), filepath.Join(base, "policy"), filepath.Join(base, "work")}
}

func writeKubeconfig(t *testing.T, env *testenv.Env) string {
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

// TestObjectsApplyAndCertsRotate runs against a real kube-apiserver with
// Karmada's config, policy and work CRDs (one API server stands in for both
// the host cluster and the Karmada API): every object the chart renders,
// for either API, is accepted by server-side apply; and certs.mode=self
// rotates through helm's lookup of the Secrets it made, without a moment
// in which a serving certificate and the bundle its clients have disagree.
func TestObjectsApplyAndCertsRotate(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: karmadaCRDDirs(t)})
	kubeconfig := writeKubeconfig(t, env)
	env.Namespace(t, ns)
	renderLive := func() rendered {
		t.Helper()
		return render(t, "--dry-run=server", "--kubeconfig", kubeconfig)
	}

	r1 := renderLive()
	var docs bytes.Buffer
	for _, u := range append(r1.host, r1.allKarmada()...) {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs.WriteString("---\n")
		docs.Write(b)
	}
	apply := exec.Command(filepath.Join(testenv.KubeBinDir(t), "kubectl"), "--kubeconfig", kubeconfig, "apply",
		"--server-side", "--force-conflicts", "--field-manager=stateshift-chart-test", "-f", "-")
	apply.Stdin = &docs
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of the rendered objects: %v\n%s", err, out)
	}

	// A second render finds the CA and the certificate and keeps them.
	r2 := renderLive()
	if caOf(t, r2) != caOf(t, r1) || crtOf(t, r2) != crtOf(t, r1) || countCerts(t, bundleOf(t, r2)) != 1 {
		t.Fatal("an upgrade without need replaced the CA or the serving certificate")
	}

	// The CA nears its end: a next CA enters the bundle, the serving
	// certificate stays signed by the current one.
	state := getSecret(t, env, "stateshift-ca")
	state.Data["ca.not-after"] = []byte(strconv.FormatInt(time.Now().Add(10*24*time.Hour).Unix(), 10))
	updateSecret(t, env, state)
	r3 := renderLive()
	next := string(secretData(t, r3, "stateshift-ca")["next-ca.crt"])
	if next == "" || countCerts(t, bundleOf(t, r3)) != 2 || crtOf(t, r3) != crtOf(t, r1) {
		t.Fatalf("near its end: next CA %q, bundle of %d, serving certificate replaced %v", next, countCerts(t, bundleOf(t, r3)), crtOf(t, r3) != crtOf(t, r1))
	}
	storeSecrets(t, env, r3)

	// The next upgrade signs with the next CA; both directions of the
	// overlap verify: the new certificate against the bundle Karmada still
	// has, the old certificate (a pod not reloaded yet) against the new one.
	r4 := renderLive()
	if caOf(t, r4) != next || crtOf(t, r4) == crtOf(t, r3) {
		t.Fatal("the next CA was not promoted, or the serving certificate not reissued")
	}
	host := "stateshift-interpreter-webhook.stateshift-system.svc"
	verifyServing(t, bundleOf(t, r3), []byte(crtOf(t, r4)), host)
	verifyServing(t, bundleOf(t, r4), []byte(crtOf(t, r3)), host)
	verifyServing(t, bundleOf(t, r4), []byte(crtOf(t, r4)), host)
	storeSecrets(t, env, r4)

	// One more upgrade drops the old CA from the bundle.
	r5 := renderLive()
	if countCerts(t, bundleOf(t, r5)) != 1 || caOf(t, r5) != next || crtOf(t, r5) != crtOf(t, r4) {
		t.Fatalf("after the overlap: bundle of %d", countCerts(t, bundleOf(t, r5)))
	}

	// A serving certificate near its end is reissued by the same CA.
	serving := getSecret(t, env, "stateshift-interpreter-webhook-certs")
	serving.Annotations["stateshift.io/not-after"] = strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	updateSecret(t, env, serving)
	r6 := renderLive()
	if crtOf(t, r6) == crtOf(t, r5) || caOf(t, r6) != caOf(t, r5) {
		t.Fatal("a serving certificate near its end was not reissued by the same CA")
	}
	verifyServing(t, bundleOf(t, r6), []byte(crtOf(t, r6)), host)
}

func secretData(t *testing.T, r rendered, name string) map[string][]byte {
	t.Helper()
	return typed[corev1.Secret](t, r.find(t, "Secret", name)).Data
}

func caOf(t *testing.T, r rendered) string {
	return string(secretData(t, r, "stateshift-ca")["ca.crt"])
}
func crtOf(t *testing.T, r rendered) string {
	return string(secretData(t, r, "stateshift-interpreter-webhook-certs")["tls.crt"])
}

// bundleOf is the caBundle the render gives Karmada.
func bundleOf(t *testing.T, r rendered) []byte {
	t.Helper()
	cfg := r.findKarmada(t, "ResourceInterpreterWebhookConfiguration", "stateshift-interpreter")
	hooks := cfg.Object["webhooks"].([]any)
	cc := hooks[0].(map[string]any)["clientConfig"].(map[string]any)
	return decodeB64(t, cc["caBundle"].(string))
}

func countCerts(t *testing.T, bundle []byte) int {
	t.Helper()
	n := 0
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return n
		}
		n++
	}
}

func getSecret(t *testing.T, env *testenv.Env, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func updateSecret(t *testing.T, env *testenv.Env, s *corev1.Secret) {
	t.Helper()
	if err := env.Client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// storeSecrets does what helm upgrade does with the render's Secrets.
func storeSecrets(t *testing.T, env *testenv.Env, r rendered) {
	t.Helper()
	for _, name := range []string{"stateshift-ca", "stateshift-interpreter-webhook-certs"} {
		want := typed[corev1.Secret](t, r.find(t, "Secret", name))
		have := &corev1.Secret{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, have)
		switch {
		case apierrors.IsNotFound(err):
			if err := env.Client.Create(context.Background(), want); err != nil {
				t.Fatal(err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			have.Data, have.Annotations = want.Data, want.Annotations
			updateSecret(t, env, have)
		}
	}
}

// TestHelmInstallUpgradeUninstall runs the real helm release cycle against
// a kube-apiserver standing in for the host cluster (hooks off: no Job can
// run without nodes, and the Jobs' scripts have tests of their own):
// install makes the pods' objects and certificates, an upgrade with new
// values keeps the certificates and changes the images, uninstall removes
// every object of the release.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t)
	kubeconfig := writeKubeconfig(t, env)
	helm := func(args ...string) {
		t.Helper()
		base := []string{"--kubeconfig", kubeconfig, "--namespace", ns}
		if out, err := Run(context.Background(), append(args, base...)...); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	helm("install", "stateshift", ChartDir(), "--create-namespace", "--no-hooks", "--set", "image.tag=v0.1.0")
	ca := getSecret(t, env, "stateshift-ca").Data["ca.crt"]
	crt := getSecret(t, env, "stateshift-interpreter-webhook-certs").Data["tls.crt"]
	if len(ca) == 0 || len(crt) == 0 {
		t.Fatal("install made no certificates")
	}

	helm("upgrade", "stateshift", ChartDir(), "--no-hooks", "--reuse-values", "--set", "image.tag=v0.2.0")
	if !bytes.Equal(getSecret(t, env, "stateshift-ca").Data["ca.crt"], ca) ||
		!bytes.Equal(getSecret(t, env, "stateshift-interpreter-webhook-certs").Data["tls.crt"], crt) {
		t.Fatal("an upgrade replaced the CA or the serving certificate")
	}
	for _, name := range []string{"stateshift-interpreter-webhook", "stateshift-migration-controller"} {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			t.Fatal(err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/stateshift/interpreter-webhook:v0.2.0" {
			t.Errorf("%s image %s after upgrade", name, img)
		}
	}
	objects := getSecret(t, env, "stateshift-karmada-objects")
	if !strings.Contains(string(objects.Data["30-members.yaml"]), "ghcr.io/stateshift/checkpoint-agent:v0.2.0") {
		t.Error("the member parts for the Karmada API do not carry the new tag")
	}

	helm("uninstall", "stateshift", "--no-hooks", "--wait")
	for _, name := range []string{"stateshift-ca", "stateshift-interpreter-webhook-certs", "stateshift-karmada-objects"} {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("after uninstall, Secret %s: %v", name, err)
		}
	}
	deps := &appsv1.DeploymentList{}
	if err := env.Client.List(context.Background(), deps, client.InNamespace(ns)); err != nil || len(deps.Items) != 0 {
		t.Errorf("after uninstall: %d Deployments (%v)", len(deps.Items), err)
	}
}
