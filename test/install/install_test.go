//go:build e2e

package install

// The tests run in file order and build on each other, as an operator's day
// does: install, move, rotate certificates during a move, upgrade to a new
// image tag, uninstall. Each later test fails at once when the install
// before it did not happen.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/podrestore"
	"github.com/stateshift/stateshift/pkg/stateshiftctl"
	"github.com/stateshift/stateshift/test/chart"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

const (
	release   = "stateshift"
	namespace = "stateshift-system"
	// helmTimeout bounds helm's own waits (pods ready, hook Jobs done).
	helmTimeout = 8 * time.Minute
	// readyTimeout is how long stateshift's pods may take to become ready
	// once helm returned (members get theirs through Karmada).
	readyTimeout = 5 * time.Minute
	moveTimeout  = 4 * time.Minute
	// interpreterURL is where Karmada calls the webhook: the host node's
	// loopback address, where the webhook pod listens (host network).
	interpreterHost = "127.0.0.23"
	interpreterPort = "8443"
	stateMiB        = 16
	interval        = 20 * time.Second
)

// installed is set once helm install succeeded and every pod was ready.
var installed bool

func requireInstalled(t *testing.T) {
	t.Helper()
	if !installed {
		t.Fatal("stateshift is not installed: TestInstallChartBringsUpEveryPod failed or did not run first")
	}
}

var componentLogs = []string{"karmada-controller-manager", "karmada-scheduler", "kubelet-member1", "kubelet-member2",
	"kubelet-karmada-host", "crio-member1", "crio-member2", "crio-karmada-host"}

// TestInstallChartBringsUpEveryPod: the operator's install, exactly as the
// README gives it (in the Karmada API the namespace, the controller's
// ServiceAccount and a token for it, the registry Secret; on the host the
// namespace, the Karmada admin kubeconfig Secret for the Jobs and the
// controller's kubeconfig Secret; one helm install with values), with the values
// this environment needs (loopback only, two members on one machine).
// Every stateshift pod becomes ready: the interpreter webhook and the
// migration controller on the host cluster, the agent and the pod-restore
// webhook on each member's real node, delivered there by Karmada.
func TestInstallChartBringsUpEveryPod(t *testing.T) {
	framework.Phase(t)
	dumpOnFailure(t)
	// An earlier uninstall on the same environment deletes the namespace
	// in the Karmada API without waiting: a token made for a ServiceAccount
	// that namespace still holds would die with it.
	framework.Eventually(t, 2*time.Minute, "no namespace "+namespace+" left terminating in the Karmada API", func(ctx context.Context) (bool, string, error) {
		n := &corev1.Namespace{}
		err := env.Karmada.Get(ctx, client.ObjectKey{Name: namespace}, n)
		if apierrors.IsNotFound(err) {
			return true, "absent", nil
		}
		return err == nil && n.DeletionTimestamp == nil, fmt.Sprintf("phase %s", n.Status.Phase), err
	})
	kubectlCreate(t, "karmada", "create", "namespace", namespace)
	kubectlCreate(t, "karmada", "-n", namespace, "create", "serviceaccount", controllerIdentity)
	token, err := env.KubeCtl(t.Context(), "karmada", "-n", namespace, "create", "token", controllerIdentity, "--duration=24h")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), strings.TrimSpace(token))
	writeFile(t, filepath.Join(dir, "kubeconfig"), controllerKubeconfig(t))
	kubectlCreate(t, "karmada", "-n", namespace, "create", "serviceaccount", doctorIdentity)
	kubectlCreate(t, framework.HostCluster, "create", "namespace", namespace)
	// The Jobs install CRDs and webhook configurations: Karmada's admin
	// kubeconfig, as Karmada's own chart gives its hooks.
	kubectlCreate(t, framework.HostCluster, "-n", namespace, "create", "secret", "generic", "karmada-kubeconfig",
		"--from-file=kubeconfig="+env.Kubeconfig("karmada"))
	// Applied, not created: a Secret of an earlier run holds an old token.
	secret, err := env.KubeCtl(t.Context(), framework.HostCluster, "-n", namespace, "create", "secret", "generic", "stateshift-controller-kubeconfig",
		"--from-file=kubeconfig="+filepath.Join(dir, "kubeconfig"), "--from-file=token="+filepath.Join(dir, "token"), "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "secret.yaml"), secret)
	if out, err := env.KubeCtl(t.Context(), framework.HostCluster, "apply", "-f", filepath.Join(dir, "secret.yaml")); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	kubectlCreate(t, "karmada", "-n", namespace, "create", "secret", "generic", framework.RegistrySecretName,
		"--type=kubernetes.io/dockerconfigjson", "--from-file=.dockerconfigjson="+filepath.Join(env.RunDir, "registry", "auth.json"))
	values := writeValues(t)
	helm(t, "install", release, chart.ChartDir(), "-n", namespace, "-f", values,
		"--set", "image.registry="+images.registry, "--set", "image.tag="+images.first,
		"--wait", "--timeout", helmTimeout.String())
	everyPodReady(t, images.first)
	installed = true
}

// TestInstallMoveRestores: a workload protected by a CheckpointPolicy moves
// from member1 to member2 by a person's Migration, through the installed
// components alone, and CRI-O restores the same process there.
func TestInstallMoveRestores(t *testing.T) {
	framework.Phase(t)
	requireInstalled(t)
	dumpOnFailure(t)
	ns := env.Namespace(t, "install-move")
	before := protectedOnMember1(t, ns)
	env.Create(t, framework.ManualMigration(ns, "to-member2", "Deployment", "mem", framework.Member2))
	restoredOnMember2(t, ns, before)
	completedRestoreListed(t, ns)
}

// TestInstallCertRotationDuringMove: while a Migration runs, helm upgrade
// rotates the serving certificates and starts a CA rotation (the next CA
// enters the bundle). The webhook serves the new certificate without a
// restart, Karmada trusts it, and the move completes.
func TestInstallCertRotationDuringMove(t *testing.T) {
	framework.Phase(t)
	requireInstalled(t)
	dumpOnFailure(t)
	ns := env.Namespace(t, "install-rotate")
	before := protectedOnMember1(t, ns)
	oldCert := servingCert(t)
	env.Create(t, framework.ManualMigration(ns, "to-member2", "Deployment", "mem", framework.Member2))
	if m, err := env.Migration(t.Context(), ns, "to-member2"); err == nil {
		t.Logf("rotating while the Migration is in phase %q", m.Status.Phase)
	}
	helm(t, "upgrade", release, chart.ChartDir(), "-n", namespace, "--reuse-values",
		"--set", "certs.self.servingRenewBeforeDays=365", "--set", "certs.self.caRenewBeforeDays=1825",
		"--wait", "--timeout", helmTimeout.String())
	newCert := servingCert(t)
	if newCert == oldCert {
		t.Fatal("helm upgrade did not reissue the interpreter's serving certificate")
	}
	framework.Eventually(t, 3*time.Minute, "the webhook serves the new certificate (reloaded from its Secret volume)", servesCert(newCert))
	framework.Eventually(t, time.Minute, "the interpreter caBundle holds the current and the next CA", caBundleCerts(2))
	restoredOnMember2(t, ns, before)
}

// TestInstallUpgradeToNewImageTag: helm upgrade to another image tag rolls
// every stateshift pod, on the host and, through Karmada, on the members;
// moves keep working.
func TestInstallUpgradeToNewImageTag(t *testing.T) {
	framework.Phase(t)
	requireInstalled(t)
	dumpOnFailure(t)
	helm(t, "upgrade", release, chart.ChartDir(), "-n", namespace, "--reuse-values",
		"--set", "image.tag="+images.second, "--wait", "--timeout", helmTimeout.String())
	everyPodReady(t, images.second)
	ns := env.Namespace(t, "install-upgraded")
	before := protectedOnMember1(t, ns)
	env.Create(t, framework.ManualMigration(ns, "to-member2", "Deployment", "mem", framework.Member2))
	restoredOnMember2(t, ns, before)
	completedRestoreListed(t, ns)
}

// TestInstallPluginDoctor: `kubectl stateshift doctor --all-members`, run
// by an operator's ServiceAccount that members.doctor.subjects allows,
// reaches every member's agent pod through Karmada's cluster proxy, runs
// the agent's doctor there with the DaemonSet's own flags (the member's
// overrides included), and every check of every member passes.
func TestInstallPluginDoctor(t *testing.T) {
	framework.Phase(t)
	requireInstalled(t)
	dumpOnFailure(t)
	token, err := env.KubeCtl(t.Context(), "karmada", "-n", namespace, "create", "token", doctorIdentity, "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "doctor.kubeconfig")
	writeFile(t, kubeconfig, karmadaKubeconfig(t, doctorIdentity, "token: "+strings.TrimSpace(token)))
	var rows []stateshiftctl.DoctorResult
	framework.Eventually(t, 3*time.Minute, "every doctor check passes on every member", func(ctx context.Context) (bool, string, error) {
		out, runErr := env.KubectlStateshift(t, kubeconfig, 2*time.Minute, "doctor", "--all-members", "-o", "json")
		rows = nil
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return false, fmt.Sprintf("%v; output %q", runErr, out), nil
		}
		var failed []string
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Cluster] = true
			if !r.OK {
				failed = append(failed, fmt.Sprintf("%s/%s %s: %s", r.Cluster, r.Pod, r.Check, r.Detail))
			}
		}
		return runErr == nil && len(failed) == 0 && seen[framework.Member1] && seen[framework.Member2],
			fmt.Sprintf("%d checks, failed %v", len(rows), failed), nil
	})
}

// TestInstallUninstallLeavesNothing: helm uninstall removes every stateshift
// object from the Karmada API, the members and the host; workloads keep
// running; Karmada interprets Deployments natively again (a new one is
// propagated and its status aggregated without stateshift's webhook).
func TestInstallUninstallLeavesNothing(t *testing.T) {
	framework.Phase(t)
	requireInstalled(t)
	dumpOnFailure(t)
	ns := env.Namespace(t, "install-uninstall")
	w := framework.RealDeployment(ns, "kept", framework.MemstateImage(), framework.MemstateArgs(1))
	env.Create(t, w, framework.PropagationPolicy(ns, "place", []string{framework.Member1}, w))
	framework.Eventually(t, moveTimeout, "a workload runs before the uninstall", env.PodsRunning(framework.Member1, ns, "kept", 1))
	helm(t, "uninstall", release, "-n", namespace, "--wait", "--timeout", helmTimeout.String())
	installed = false
	framework.Eventually(t, readyTimeout, "nothing of stateshift left in the Karmada API, the members and the host", nothingLeft)
	framework.Consistently(t, 10*time.Second, "the workload keeps running", env.PodsRunning(framework.Member1, ns, "kept", 1))
	native := framework.RealDeployment(ns, "native", framework.MemstateImage(), framework.MemstateArgs(1))
	env.Create(t, native, framework.PropagationPolicy(ns, "native", []string{framework.Member1}, native))
	framework.Eventually(t, moveTimeout, "Karmada aggregates a new Deployment's status natively", readyInKarmada(ns, "native"))
}

// writeValues writes the values this environment needs: every address is
// a loopback one. The host pods use the host network on the host node's
// address (Karmada calls the webhook by URL); the members' pods run on
// their real nodes, which share this machine, so each member gets its API
// server address, its kubelet's folders, host folders of its own for the
// agent (two agents sharing a journal would sweep each other's archives)
// and its webhook address through members.clusterOverrides.
func writeValues(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `interpreter:
  replicas: 1
  pdb: {minAvailable: 0}
  url: https://%s:%s/interpreter
  hostNetwork: true
  bindAddress: $(POD_IP)
  port: %s
  metricsPort: 28080
  probePort: 28000
controller:
  replicas: 1
  karmadaIdentity:
    kubeconfigSecret: {name: stateshift-controller-kubeconfig}
  hostNetwork: true
  url: https://%s:28443/validate-migration
  bindAddress: $(POD_IP)
  port: 28443
  metricsPort: 28081
  probePort: 28001
  extraArgs: [--require-repository-allowlist]
karmada:
  job: {hostNetwork: true}
# Every admission rule on: who may checkpoint, where checkpoints may go,
# moves within placement (the default creators: the controller's
# ServiceAccount, Karmada's push-mode identities on members).
security:
  repositoryAllowlist: {enabled: true}
  checkpointAdmission: {enabled: true}
members:
  propagateSecrets: [%s]
  doctor:
    subjects: [{kind: ServiceAccount, name: %s, namespace: %s}]
  agent:
    nodeSelector: {stateshift.io/node-tier: real}
    # This machine's root lacks CAP_SYS_RESOURCE: runc cannot give a
    # node-critical pod its negative oom_score_adj.
    priorityClassName: ""
    # The local registry speaks plain HTTP on loopback.
    extraArgs: [--insecure-registries=%s, --max-attempts=8]
  podRestore:
    replicas: 1
    hostNetwork: true
    bindAddress: $(POD_IP)
    port: 9443
    metricsPort: 28082
    probePort: 28002
    nodeSelector: {stateshift.io/node-tier: real}
    tolerations: [{key: stateshift.io/node-tier, operator: Exists}]
    extraArgs: [--insecure-registries=%s]
  clusterOverrides:
`, interpreterHost, interpreterPort, interpreterPort, interpreterHost, framework.RegistrySecretName, doctorIdentity, namespace, framework.RegistryHost(), framework.RegistryHost())
	for i, m := range framework.Members {
		kubelet := filepath.Join(env.RunDir, m, "real", "kubelet")
		fmt.Fprintf(&b, `    - clusterNames: [%s]
      apiServer: https://127.0.0.1:%d
      checkpointDir: %s/checkpoints
      kubeletCA: %s/pki/ca.crt
      journalHostPath: %s/%s/agent-pod/journal
      buildahStorageHostPath: %s/%s/agent-pod/buildah
      podRestoreURL: https://%s:9443/mutate-pods
      podRestoreArgs: [--metrics-bind-address=127.0.0.1:%d]
`, m, 6443+i, kubelet, env.RunDir, env.RunDir, m, env.RunDir, m, realNodeIP[m], 28082+10*i)
	}
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("values:\n%s", b.String())
	return p
}

// controllerIdentity is the ServiceAccount in the Karmada API the
// controller authenticates as (controller.karmadaIdentity): the chart binds
// its rights to it, and Karmada's cluster proxy impersonates it on members.
const controllerIdentity = "stateshift-interpreter-webhook"

// doctorIdentity is the ServiceAccount in the Karmada API an operator runs
// `kubectl stateshift doctor` as (members.doctor.subjects).
const doctorIdentity = "stateshift-doctor"

// controllerKubeconfig is the Karmada API kubeconfig of the controller's
// Secret: the API server as pods on the host reach it, its CA, and the
// ServiceAccount token from the file beside it in the same Secret (client-go
// re-reads a token file, so renewing the Secret renews the token).
func controllerKubeconfig(t *testing.T) string {
	t.Helper()
	return karmadaKubeconfig(t, controllerIdentity, "tokenFile: /etc/karmada/kubeconfig/token")
}

// karmadaKubeconfig is a kubeconfig for the Karmada API as user, whose
// credentials are the line cred (a token file, or a token).
func karmadaKubeconfig(t *testing.T, user, cred string) string {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(env.RunDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: karmada
  cluster:
    server: https://127.0.0.1:5443
    certificate-authority-data: %s
users:
- name: %s
  user:
    %s
contexts:
- name: karmada
  context: {cluster: karmada, user: %s}
current-context: karmada
`, base64.StdEncoding.EncodeToString(ca), user, cred, user)
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// realNodeIP is each member's real node address (hack/local/realnode.sh).
var realNodeIP = map[string]string{framework.Member1: "127.0.0.21", framework.Member2: "127.0.0.22"}

// helm runs the cached helm CLI against the host cluster.
func helm(t *testing.T, args ...string) {
	t.Helper()
	bin, err := chart.Helm()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), helmTimeout+time.Minute)
	defer cancel()
	args = append(args, "--kubeconfig", env.Kubeconfig(framework.HostCluster))
	cmd := exec.CommandContext(ctx, bin, args...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir+"/cache", "HELM_CONFIG_HOME="+dir+"/config", "HELM_DATA_HOME="+dir+"/data")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("helm %s: %.1fs", args[0], time.Since(start).Seconds())
}

// kubectlCreate runs a kubectl create; an object left by an earlier run
// on the same environment (helm uninstall keeps the release namespace, as
// helm always does) is fine.
func kubectlCreate(t *testing.T, cluster string, args ...string) {
	t.Helper()
	out, err := env.KubeCtl(t.Context(), cluster, args...)
	if err != nil && !strings.Contains(strings.ToLower(out), "already exists") {
		t.Fatal(err)
	}
}

// everyPodReady waits until every stateshift pod is ready and runs images
// of `tag`: the interpreter webhook and the controller on the host, the
// agent on each member's real node and the pod-restore webhook on each
// member.
func everyPodReady(t *testing.T, tag string) {
	t.Helper()
	clusters := map[string]client.Client{framework.HostCluster: host}
	want := map[string]int{framework.HostCluster: 2}
	for _, m := range framework.Members {
		clusters[m] = env.Members[m]
		want[m] = 2
	}
	for name, c := range clusters {
		framework.Eventually(t, readyTimeout, "stateshift's pods ready on "+name+" with tag "+tag, podsReady(c, want[name], tag))
	}
}

// podsReady checks that exactly `want` pods of stateshift's deployments and
// daemon sets run in its namespace, every one ready and running images of
// `tag` (Jobs' pods are not counted).
func podsReady(c client.Client, want int, tag string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/part-of": "stateshift"}); err != nil {
			return false, "", err
		}
		var saw []string
		n, ok := 0, true
		for _, p := range pods.Items {
			if isJobPod(&p) {
				continue
			}
			n++
			ready := p.DeletionTimestamp == nil && podReady(&p) && strings.HasSuffix(p.Spec.Containers[0].Image, ":"+tag)
			ok = ok && ready
			saw = append(saw, fmt.Sprintf("%s on %s image %s ready=%t", p.Name, p.Spec.NodeName, p.Spec.Containers[0].Image, ready))
		}
		return ok && n == want, strings.Join(saw, "; "), nil
	}
}

func isJobPod(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "Job" {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// protectedOnMember1 runs memstate as Deployment "mem" on member1's real
// node, protected by a CheckpointPolicy, and returns its state with a fresh
// note once a verified checkpoint is armed.
func protectedOnMember1(t *testing.T, ns string) framework.MemState {
	t.Helper()
	w := framework.RealDeployment(ns, "mem", framework.MemstateImage(), framework.MemstateArgs(stateMiB))
	// CRI-O restores on top of the image the container ran and does not
	// pull it: pre-pull it on the destination.
	env.PrePull(t, framework.Member2, ns, framework.MemstateImage())
	env.Cordon(t, framework.Member2)
	gvk := w.GetObjectKind().GroupVersionKind()
	env.Create(t, w, framework.PropagationPolicy(ns, "place", framework.Members, w))
	// Create decodes the answer into w, which drops its type: the policy
	// selects by apiVersion and kind.
	w.GetObjectKind().SetGroupVersionKind(gvk)
	framework.Eventually(t, moveTimeout, "bound to member1", env.BoundTo(ns, "Deployment", "mem", framework.Member1))
	framework.Eventually(t, moveTimeout, "running on member1's real node", env.PodsRunning(framework.Member1, ns, "mem", 1))
	env.Uncordon(t, framework.Member2)
	cp := framework.CheckpointPolicy(ns, "protect", interval, "", w)
	// The repository allowlist is on: an administrator allows the
	// namespace its repository.
	out, err := env.KubeCtl(t.Context(), "karmada", "annotate", "namespace", ns, "stateshift.io/allowed-repositories="+cp.Spec.Repository)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The admission policy reads the namespace from the API server's
	// cache, which may not show the annotation yet: only its refusal is
	// retried.
	framework.Eventually(t, 30*time.Second, "the CheckpointPolicy admitted once the namespace's allowlist is seen", func(ctx context.Context) (bool, string, error) {
		err := env.Karmada.Create(ctx, cp.DeepCopy())
		if err != nil && strings.Contains(err.Error(), "stateshift-checkpoint-repositories") {
			return false, err.Error(), nil
		}
		return err == nil, "", err
	})
	framework.Eventually(t, moveTimeout, "restore armed with a verified checkpoint", env.Armed(ns, cp.Name, "mem"))
	pod, err := env.LivePod(t.Context(), framework.Member1, ns, "mem")
	if err != nil {
		t.Fatal(err)
	}
	return env.MemBefore(t, framework.Member1, ns, pod.Name)
}

// restoredOnMember2 waits for the Migration to be Restored and for
// member2's real node to run the same process, restored by CRI-O.
func restoredOnMember2(t *testing.T, ns string, before framework.MemState) {
	t.Helper()
	framework.Eventually(t, moveTimeout, "Migration Restored", env.MigrationPhase(ns, "to-member2", v1alpha1.MigrationRestored))
	framework.Eventually(t, moveTimeout, "member2's real node runs mem from the checkpoint image, member1 none",
		framework.All(env.RealRestored(framework.Member2, ns, "mem"), env.NoPods(framework.Member1, ns, "mem")))
	moved, err := env.LivePod(t.Context(), framework.Member2, ns, "mem")
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "the same process, restored by CRI-O", env.SameProcess(framework.Member2, ns, moved.Name, before, before.Counter))
}

// completedRestoreListed: once the move's restore completed, member2's
// pod-restore process lists it in its webhook configuration's conditions
// (its pods then need the webhook no more), and Karmada, which delivers
// that configuration, keeps the conditions (the chart's
// ResourceInterpreterCustomization).
func completedRestoreListed(t *testing.T, ns string) {
	t.Helper()
	listed := func(ctx context.Context) (bool, string, error) {
		d := &appsv1.Deployment{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Namespace: ns, Name: "mem"}, d); err != nil {
			return false, "", err
		}
		done := d.Annotations[v1alpha1.AnnotationRestoreCompleted]
		if done == "" {
			return false, "member2's Deployment records no completed restore yet", nil
		}
		key := ns + "/" + done
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Name: "stateshift-pod-restore"}, cfg); err != nil {
			return false, "", err
		}
		found := 0
		for _, w := range cfg.Webhooks {
			for _, c := range w.MatchConditions {
				if (c.Name == podrestore.PendingCondition || c.Name == podrestore.CompletedCondition) && strings.Contains(c.Expression, "'"+key+"'") {
					found++
				}
			}
		}
		return found == 2, fmt.Sprintf("%d of 2 conditions list %s", found, key), nil
	}
	framework.Eventually(t, moveTimeout, "member2's pod-restore webhook configuration lists the completed restore", listed)
	framework.Consistently(t, 20*time.Second, "Karmada keeps the listed restore in the delivered configuration", listed)
}

// servingCert is the interpreter's serving certificate in its host Secret.
func servingCert(t *testing.T) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := host.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: release + "-interpreter-webhook-certs"}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data["tls.crt"])
}

// servesCert checks the certificate the webhook presents on its address.
func servesCert(wantPEM string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // compares the presented certificate, trusts nothing
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", interpreterHost+":"+interpreterPort)
		if err != nil {
			return false, err.Error(), nil
		}
		defer func() { _ = conn.Close() }()
		certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
		blk, _ := pem.Decode([]byte(wantPEM))
		if len(certs) == 0 || blk == nil {
			return false, "no certificate", nil
		}
		return string(certs[0].Raw) == string(blk.Bytes), fmt.Sprintf("serves serial %s", certs[0].SerialNumber), nil
	}
}

// caBundleCerts checks how many CA certificates the interpreter
// configuration in the Karmada API carries.
func caBundleCerts(want int) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "config.karmada.io", Version: "v1alpha1", Kind: "ResourceInterpreterWebhookConfiguration"})
		if err := env.Karmada.Get(ctx, client.ObjectKey{Name: "stateshift-interpreter"}, u); err != nil {
			return false, "", err
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		if len(hooks) == 0 {
			return false, "no webhooks", nil
		}
		bundle, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
		pemBytes, err := base64.StdEncoding.DecodeString(bundle)
		if err != nil {
			return false, "", err
		}
		n := strings.Count(string(pemBytes), "BEGIN CERTIFICATE")
		return n == want, fmt.Sprintf("%d CA certificates in the bundle", n), nil
	}
}

// leftover lists what a query found of stateshift in one cluster.
type leftover struct {
	cluster string
	gvk     schema.GroupVersionKind
	ns      string
	// name: one object; empty: every object of the kind in ns.
	name string
}

// nothingLeft checks the Karmada API, every member and the host for any
// object of stateshift's.
func nothingLeft(ctx context.Context) (bool, string, error) {
	apps := func(kind string) schema.GroupVersionKind { return appsv1.SchemeGroupVersion.WithKind(kind) }
	crd := schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	mwc := schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"}
	queries := []leftover{
		{cluster: "karmada", gvk: schema.GroupVersionKind{Group: "config.karmada.io", Version: "v1alpha1", Kind: "ResourceInterpreterWebhookConfiguration"}, name: "stateshift-interpreter"},
		{cluster: "karmada", gvk: schema.GroupVersionKind{Group: "policy.karmada.io", Version: "v1alpha1", Kind: "ClusterPropagationPolicy"}, name: "stateshift-members"},
		{cluster: "karmada", gvk: schema.GroupVersionKind{Group: "policy.karmada.io", Version: "v1alpha1", Kind: "ClusterOverridePolicy"}, name: "stateshift-members-agent"},
		{cluster: "karmada", gvk: crd, name: "checkpointpolicies.stateshift.io"},
		{cluster: "karmada", gvk: crd, name: "migrations.stateshift.io"},
		{cluster: "karmada", gvk: crd, name: "checkpoints.stateshift.io"},
		{cluster: "karmada", gvk: corev1.SchemeGroupVersion.WithKind("Namespace"), name: namespace},
		{cluster: framework.HostCluster, gvk: apps("Deployment"), ns: namespace},
	}
	for _, m := range framework.Members {
		queries = append(queries,
			leftover{cluster: m, gvk: apps("DaemonSet"), ns: namespace},
			leftover{cluster: m, gvk: apps("Deployment"), ns: namespace},
			leftover{cluster: m, gvk: mwc, name: "stateshift-pod-restore"},
			leftover{cluster: m, gvk: crd, name: "checkpoints.stateshift.io"},
			leftover{cluster: m, gvk: corev1.SchemeGroupVersion.WithKind("Pod"), ns: namespace})
	}
	var left []string
	for _, q := range queries {
		c := env.Karmada
		switch q.cluster {
		case framework.HostCluster:
			c = host
		case "karmada":
		default:
			c = env.Members[q.cluster]
		}
		if q.name != "" {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(q.gvk)
			err := c.Get(ctx, client.ObjectKey{Name: q.name}, u)
			switch {
			case err == nil:
				left = append(left, fmt.Sprintf("%s: %s %s", q.cluster, q.gvk.Kind, q.name))
			case !apierrors.IsNotFound(err):
				return false, "", err
			}
			continue
		}
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(q.gvk.GroupVersion().WithKind(q.gvk.Kind + "List"))
		if err := c.List(ctx, l, client.InNamespace(q.ns)); err != nil && !apierrors.IsNotFound(err) {
			return false, "", err
		}
		for _, o := range l.Items {
			left = append(left, fmt.Sprintf("%s: %s %s/%s", q.cluster, q.gvk.Kind, o.GetNamespace(), o.GetName()))
		}
	}
	return len(left) == 0, strings.Join(left, "; "), nil
}

// readyInKarmada checks that Karmada reports the Deployment's replicas
// ready in its resource template (status aggregated from the member).
func readyInKarmada(ns, name string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		d := &appsv1.Deployment{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return false, "", err
		}
		return d.Status.ReadyReplicas == 1, fmt.Sprintf("readyReplicas=%d", d.Status.ReadyReplicas), nil
	}
}

// dumpOnFailure logs the local components and every stateshift pod's log
// when the test fails.
func dumpOnFailure(t *testing.T) {
	t.Helper()
	env.DumpLogsOnFailure(t, componentLogs...)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, c := range append([]string{framework.HostCluster}, framework.Members...) {
			out, _ := env.KubeCtl(ctx, c, "-n", namespace, "get", "pods,jobs,daemonsets,deployments", "-o", "wide")
			t.Logf("----- %s: %s\n%s", c, namespace, out)
			out, _ = env.KubeCtl(ctx, c, "-n", namespace, "logs", "-l", "app.kubernetes.io/part-of=stateshift",
				"--all-containers", "--prefix", "--tail=40", "--max-log-requests=10")
			t.Logf("----- %s: logs\n%s", c, out)
		}
	})
}
