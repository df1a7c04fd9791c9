package chart

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app/options"
)

const ns = "stateshift-system"

// rendered is one render of the chart, with the Karmada-API objects of the
// apply Job's Secret parsed too.
type rendered struct {
	host    []*unstructured.Unstructured
	karmada map[string][]*unstructured.Unstructured // file -> objects
}

func render(t *testing.T, extra ...string) rendered {
	t.Helper()
	objs, err := Template(context.Background(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{karmada: map[string][]*unstructured.Unstructured{}}
	for _, u := range objs {
		if ForKarmada(u) {
			r.karmada["inline"] = append(r.karmada["inline"], u)
			continue
		}
		r.host = append(r.host, u)
		if u.GetKind() == "Secret" && u.GetName() == "stateshift-karmada-objects" {
			files, _, _ := unstructured.NestedStringMap(u.Object, "stringData")
			for name, body := range files {
				parsed, err := Split([]byte(body))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				r.karmada[name] = parsed
			}
		}
	}
	return r
}

func (r rendered) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range r.host {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s on the host", kind, name)
	return nil
}

func (r rendered) findKarmada(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, list := range r.karmada {
		for _, u := range list {
			if u.GetKind() == kind && u.GetName() == name {
				return u
			}
		}
	}
	t.Fatalf("no %s %s for the Karmada API", kind, name)
	return nil
}

func (r rendered) allKarmada() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	names := make([]string, 0, len(r.karmada))
	for n := range r.karmada {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, r.karmada[n]...)
	}
	return out
}

func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func TestLintWithEveryValueSet(t *testing.T) {
	sets := [][]string{
		nil,
		{"--set", "certs.mode=cert-manager"},
		{"--set", "interpreter.url=https://127.0.0.1:8443/interpreter,interpreter.hostNetwork=true,interpreter.bindAddress=127.0.0.1"},
		{"--set", "members.enabled=false,controller.enabled=false"},
	}
	ci, _ := filepath.Glob(filepath.Join(ChartDir(), "ci", "*-values.yaml"))
	if len(ci) < 2 {
		t.Fatalf("ci value sets: %v", ci)
	}
	for _, f := range ci {
		sets = append(sets, []string{"-f", f})
	}
	for _, extra := range sets {
		args := append([]string{"lint", "--strict", ChartDir(), "--namespace", ns}, extra...)
		if out, err := Run(context.Background(), args...); err != nil {
			t.Errorf("%v: %v\n%s", extra, err, out)
		}
	}
}

// The default install: webhook and controller on the host, everything else
// for the Karmada API in the apply Job's Secret.
func TestDefaultRender(t *testing.T) {
	r := render(t)
	for _, u := range r.host {
		if u.GetKind() != "Namespace" && u.GetNamespace() != ns {
			t.Errorf("%s %s in namespace %q", u.GetKind(), u.GetName(), u.GetNamespace())
		}
	}

	web := typed[appsv1.Deployment](t, r.find(t, "Deployment", "stateshift-interpreter-webhook"))
	pod := web.Spec.Template.Spec
	if *web.Spec.Replicas != 2 || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken || len(pod.TopologySpreadConstraints) != 2 ||
		pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" || web.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("webhook deployment: replicas %d automount %v spread %+v", *web.Spec.Replicas, pod.AutomountServiceAccountToken, pod.TopologySpreadConstraints)
	}
	webOpts := parseArgs(t, pod.Containers[0].Args)
	if webOpts.Kubeconfig != "" || webOpts.LeaderElect {
		t.Errorf("the webhook alone needs no API server: %+v", webOpts)
	}
	checkCertMount(t, pod, webOpts.CertDir)

	pdb := typed[policyv1.PodDisruptionBudget](t, r.find(t, "PodDisruptionBudget", "stateshift-interpreter-webhook"))
	if pdb.Spec.MinAvailable.IntValue() != 1 || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, web.Spec.Selector.MatchLabels) {
		t.Errorf("pdb %+v", pdb.Spec)
	}
	svc := typed[corev1.Service](t, r.find(t, "Service", "stateshift-interpreter-webhook"))
	if !reflect.DeepEqual(svc.Spec.Selector, web.Spec.Template.Labels) && svc.Spec.Selector["app.kubernetes.io/name"] != web.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Errorf("service selector %v, pod labels %v", svc.Spec.Selector, web.Spec.Template.Labels)
	}

	ctl := typed[appsv1.Deployment](t, r.find(t, "Deployment", "stateshift-migration-controller"))
	cpod := ctl.Spec.Template.Spec
	ctlOpts := parseArgs(t, cpod.Containers[0].Args)
	if !ctlOpts.LeaderElect || ctlOpts.LeaderElectionNamespace != ns || *ctl.Spec.Replicas != 2 || ctlOpts.BindAddress != "0.0.0.0" {
		t.Errorf("controller: leader election %v in %q, replicas %d, bind %s", ctlOpts.LeaderElect, ctlOpts.LeaderElectionNamespace, *ctl.Spec.Replicas, ctlOpts.BindAddress)
	}
	if dir, file := filepath.Split(ctlOpts.Kubeconfig); file != "kubeconfig" || !mountsSecret(cpod, strings.TrimSuffix(dir, "/"), "karmada-kubeconfig") {
		t.Errorf("controller --kubeconfig=%s is not the karmada-kubeconfig Secret's key: %+v", ctlOpts.Kubeconfig, cpod.Volumes)
	}
	checkCertMount(t, cpod, ctlOpts.CertDir)

	// The hooks: apply after install and upgrade, delete before uninstall,
	// in an order that gives Karmada its native interpretation back first.
	apply := typed[batchv1.Job](t, r.find(t, "Job", "stateshift-karmada-apply"))
	del := typed[batchv1.Job](t, r.find(t, "Job", "stateshift-karmada-delete"))
	if apply.Annotations["helm.sh/hook"] != "post-install,post-upgrade" || del.Annotations["helm.sh/hook"] != "pre-delete" {
		t.Errorf("hooks: %q %q", apply.Annotations["helm.sh/hook"], del.Annotations["helm.sh/hook"])
	}
	for _, j := range []*batchv1.Job{apply, del} {
		p := j.Spec.Template.Spec
		if j.Spec.ActiveDeadlineSeconds == nil || p.Containers[0].Image != "ghcr.io/stateshift/kubectl:v1.35.3" ||
			!mountsSecret(p, "/objects", "stateshift-karmada-objects") || !mountsSecret(p, "/etc/karmada/kubeconfig", "karmada-kubeconfig") {
			t.Errorf("job %s: deadline %v image %s volumes %+v", j.Name, j.Spec.ActiveDeadlineSeconds, p.Containers[0].Image, p.Volumes)
		}
	}
	script := apply.Spec.Template.Spec.Containers[0].Args[0]
	if !strings.Contains(script, "until timeout 5 nc -w 2 stateshift-interpreter-webhook.stateshift-system.svc 443 </dev/null") || !strings.Contains(script, "apply --server-side") {
		t.Errorf("apply script:\n%s", script)
	}
	delScript := del.Spec.Template.Spec.Containers[0].Args[0]
	order := []string{"50-interpreter-config.yaml", "25-security.yaml", "30-members.yaml", "10-crds.yaml", "40-propagation.yaml", "00-namespace.yaml"}
	last := -1
	for _, f := range order {
		i := strings.Index(delScript, "/tmp/objects/"+f)
		if i <= last {
			t.Errorf("delete script does not delete %s after %v:\n%s", f, order, delScript)
		}
		last = i
	}

	checkKarmadaObjects(t, r)
	checkCertificates(t, r)
}

func parseArgs(t *testing.T, args []string) *options.Options {
	t.Helper()
	o := options.New()
	fs := pflag.NewFlagSet("interpreter-webhook", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("args %v: %v", args, err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("args %v: %v", args, err)
	}
	return o
}

func mountsSecret(pod corev1.PodSpec, path, secret string) bool {
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		for _, c := range pod.Containers {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && m.MountPath == path && m.ReadOnly && m.SubPath == "" {
					return true
				}
			}
		}
	}
	return false
}

func checkCertMount(t *testing.T, pod corev1.PodSpec, dir string) {
	t.Helper()
	if !mountsSecret(pod, dir, "stateshift-interpreter-webhook-certs") {
		t.Errorf("the serving certificate Secret is not mounted at --cert-dir %s: %+v", dir, pod.Volumes)
	}
}

// Every object for the Karmada API carries the release label; everything
// labeled for members is selected by the ClusterPropagationPolicy; only
// the Checkpoint CRD of the three goes to members.
func checkKarmadaObjects(t *testing.T, r rendered) {
	t.Helper()
	want := []string{"00-namespace.yaml", "10-crds.yaml", "20-rbac.yaml", "25-security.yaml", "30-members.yaml", "40-propagation.yaml", "50-interpreter-config.yaml"}
	var got []string
	for f := range r.karmada {
		got = append(got, f)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("objects Secret files %v, want %v", got, want)
	}
	cpp := r.findKarmada(t, "ClusterPropagationPolicy", "stateshift-members")
	selectors, _, _ := unstructured.NestedSlice(cpp.Object, "spec", "resourceSelectors")
	selected := map[string]bool{}
	for _, s := range selectors {
		m := s.(map[string]any)
		labels, _, _ := unstructured.NestedStringMap(m, "labelSelector", "matchLabels")
		if labels["stateshift.io/deliver-to-members"] == "true" && labels["stateshift.io/release"] == "stateshift" {
			selected[m["apiVersion"].(string)+" "+m["kind"].(string)] = true
		}
	}
	delivered := map[string]bool{}
	for _, u := range r.allKarmada() {
		if u.GetLabels()["stateshift.io/release"] != "stateshift" {
			t.Errorf("%s %s lacks the release label", u.GetKind(), u.GetName())
		}
		if u.GetLabels()["stateshift.io/deliver-to-members"] == "true" {
			delivered[u.GetKind()+"/"+u.GetName()] = true
			if !selected[u.GetAPIVersion()+" "+u.GetKind()] {
				t.Errorf("%s %s is labeled for members but the policy selects no %s %s", u.GetKind(), u.GetName(), u.GetAPIVersion(), u.GetKind())
			}
		}
	}
	for _, name := range []string{"DaemonSet/stateshift-checkpoint-agent", "Deployment/stateshift-pod-restore", "MutatingWebhookConfiguration/stateshift-pod-restore",
		"Secret/stateshift-pod-restore-certs", "CustomResourceDefinition/checkpoints.stateshift.io", "ClusterRole/stateshift-checkpoint-agent",
		"PodDisruptionBudget/stateshift-pod-restore", "Service/stateshift-pod-restore"} {
		if !delivered[name] {
			t.Errorf("%s is not delivered to members", name)
		}
	}
	for _, name := range []string{"CustomResourceDefinition/checkpointpolicies.stateshift.io", "CustomResourceDefinition/migrations.stateshift.io", "ClusterRole/stateshift-migration-controller"} {
		if delivered[name] {
			t.Errorf("%s is Karmada's alone but delivered to members", name)
		}
	}
	// The chart's CRDs are artifacts/crds (make artifacts copies them).
	crds, _ := filepath.Glob(filepath.Join(Root(), "artifacts", "crds", "*.yaml"))
	if len(r.karmada["10-crds.yaml"]) != len(crds) || len(crds) != 3 {
		t.Errorf("%d CRDs rendered, %d in artifacts/crds", len(r.karmada["10-crds.yaml"]), len(crds))
	}
	// Leader election has its Lease permissions where the controller looks.
	role := r.findKarmada(t, "Role", "stateshift-migration-controller")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if role.GetNamespace() != ns || !strings.Contains(toString(rules), "leases") {
		t.Errorf("leader election role %s/%s rules %v", role.GetNamespace(), role.GetName(), rules)
	}
}

func toString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

// checkCertificates: the interpreter's and pod-restore's serving
// certificates verify against the caBundles Karmada and the members'
// API servers get, for the names they call.
func checkCertificates(t *testing.T, r rendered) {
	t.Helper()
	cfg := r.findKarmada(t, "ResourceInterpreterWebhookConfiguration", "stateshift-interpreter")
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	if len(hooks) != 2 {
		t.Fatalf("webhooks %v", hooks)
	}
	secret := typed[corev1.Secret](t, r.find(t, "Secret", "stateshift-interpreter-webhook-certs"))
	for _, h := range hooks {
		bundle, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
		svcName, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "name")
		if svcName != "stateshift-interpreter-webhook" {
			t.Errorf("clientConfig service %q", svcName)
		}
		verifyServing(t, decodeB64(t, bundle), secret.Data["tls.crt"], "stateshift-interpreter-webhook.stateshift-system.svc")
	}
	mwc := r.findKarmada(t, "MutatingWebhookConfiguration", "stateshift-pod-restore")
	mhooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	bundle, _, _ := unstructured.NestedString(mhooks[0].(map[string]any), "clientConfig", "caBundle")
	prSecret := r.findKarmada(t, "Secret", "stateshift-pod-restore-certs")
	crt, _, _ := unstructured.NestedString(prSecret.Object, "data", "tls.crt")
	verifyServing(t, decodeB64(t, bundle), decodeB64(t, crt), "stateshift-pod-restore.stateshift-system.svc")
}

func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func verifyServing(t *testing.T, bundle, crtPEM []byte, host string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatalf("caBundle is not PEM: %q", bundle)
	}
	block, _ := pem.Decode(crtPEM)
	if block == nil {
		t.Fatalf("serving certificate is not PEM: %q", crtPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("serving certificate for %s: %v", host, err)
	}
}

func TestCertManagerRender(t *testing.T) {
	r := render(t, "--set", "certs.mode=cert-manager")
	for _, name := range []string{"stateshift-interpreter-webhook", "stateshift-pod-restore", "stateshift-ca"} {
		c := r.find(t, "Certificate", name)
		secret, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
		if secret == "" {
			t.Errorf("certificate %s has no secretName", name)
		}
	}
	r.find(t, "Issuer", "stateshift-ca")
	r.find(t, "CronJob", "stateshift-karmada-certs-sync")
	for _, u := range r.host {
		if u.GetKind() == "Secret" && (u.GetName() == "stateshift-ca" || u.GetName() == "stateshift-interpreter-webhook-certs") {
			t.Errorf("cert-manager mode renders Secret %s itself", u.GetName())
		}
	}
	cfg := r.findKarmada(t, "ResourceInterpreterWebhookConfiguration", "stateshift-interpreter")
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	bundle, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
	if bundle != "__CA_BUNDLE__" {
		t.Errorf("caBundle %q, want the placeholder the Job fills", bundle)
	}
	apply := typed[batchv1.Job](t, r.find(t, "Job", "stateshift-karmada-apply"))
	p := apply.Spec.Template.Spec
	if !mountsSecret(p, "/certs/interpreter", "stateshift-interpreter-webhook-certs") || !mountsSecret(p, "/certs/pod-restore", "stateshift-pod-restore-certs") ||
		!strings.Contains(p.Containers[0].Args[0], "s|__CA_BUNDLE__|") {
		t.Errorf("apply job does not fill the bundle from cert-manager's Secrets: %+v\n%s", p.Volumes, p.Containers[0].Args[0])
	}
}

// Loopback-only networking (ci/loopback-values.yaml): Karmada and the
// members' API servers call URLs on 127.0.0.1, every host-cluster pod
// uses the host network on ports of its own, the apply Job cannot wait on
// a Service.
func TestLoopbackRender(t *testing.T) {
	r := render(t, "-f", filepath.Join(ChartDir(), "ci", "loopback-values.yaml"))
	cfg := r.findKarmada(t, "ResourceInterpreterWebhookConfiguration", "stateshift-interpreter")
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	for _, h := range hooks {
		got, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "url")
		if _, hasSvc, _ := unstructured.NestedMap(h.(map[string]any), "clientConfig", "service"); got != "https://127.0.0.1:8443/interpreter" || hasSvc {
			t.Errorf("clientConfig %v", h.(map[string]any)["clientConfig"])
		}
	}
	mwc := r.findKarmada(t, "MutatingWebhookConfiguration", "stateshift-pod-restore")
	mhooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	if url, _, _ := unstructured.NestedString(mhooks[0].(map[string]any), "clientConfig", "url"); url != "https://127.0.0.1:9443/mutate-pods" {
		t.Errorf("pod-restore clientConfig url %q", url)
	}
	web := typed[appsv1.Deployment](t, r.find(t, "Deployment", "stateshift-interpreter-webhook"))
	if parseArgs(t, web.Spec.Template.Spec.Containers[0].Args).BindAddress != "127.0.0.1" {
		t.Errorf("webhook args %v", web.Spec.Template.Spec.Containers[0].Args)
	}
	// Host-network pods of the host cluster share one port space: every
	// port that a container listens on (flags included) is its own.
	used := map[int32]string{}
	for _, name := range []string{"stateshift-interpreter-webhook", "stateshift-migration-controller"} {
		d := typed[appsv1.Deployment](t, r.find(t, "Deployment", name))
		if !d.Spec.Template.Spec.HostNetwork || *d.Spec.Replicas != 1 {
			t.Errorf("%s: hostNetwork %v replicas %d", name, d.Spec.Template.Spec.HostNetwork, *d.Spec.Replicas)
		}
		// A surge pod could not bind the ports beside the old one.
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 0 {
			t.Errorf("%s: a host-network rollout must not surge: %+v", name, d.Spec.Strategy)
		}
		o := parseArgs(t, d.Spec.Template.Spec.Containers[0].Args)
		for _, addr := range []string{":" + strconv.Itoa(o.SecurePort), o.MetricsBindAddress, o.HealthProbeBindAddress} {
			_, p, _ := strings.Cut(addr, ":")
			port, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("%s: address %q", name, addr)
			}
			if other, dup := used[int32(port)]; dup {
				t.Errorf("port %d of %s is %s's too", port, name, other)
			}
			used[int32(port)] = name
		}
	}
	// The apply Job waits for the webhook at the URL's host and port, not
	// for a Service.
	apply := typed[batchv1.Job](t, r.find(t, "Job", "stateshift-karmada-apply"))
	if script := apply.Spec.Template.Spec.Containers[0].Args[0]; !apply.Spec.Template.Spec.HostNetwork || !strings.Contains(script, "nc -w 2 127.0.0.1 8443 ") {
		t.Errorf("apply job: hostNetwork %v, script %s", apply.Spec.Template.Spec.HostNetwork, script)
	}
	for _, u := range append(r.host, r.allKarmada()...) {
		if u.GetKind() == "PodDisruptionBudget" {
			t.Errorf("a PDB for one replica blocks every drain: %s", u.GetName())
		}
	}
}

// inline renders the same Karmada-API objects as documents, and no Jobs.
func TestInlineRenderMatchesJobObjects(t *testing.T) {
	job := render(t, "--set", "certs.mode=external", "--set-string", "certs.external.caBundle=-----BEGIN CERTIFICATE-----x")
	inline := render(t, "--set", "certs.mode=external,karmada.apply=inline")
	names := func(list []*unstructured.Unstructured) []string {
		var out []string
		for _, u := range list {
			out = append(out, u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName())
		}
		sort.Strings(out)
		return out
	}
	if a, b := names(job.allKarmada()), names(inline.karmada["inline"]); !reflect.DeepEqual(a, b) || len(a) < 20 {
		t.Errorf("job objects %v\ninline objects %v", a, b)
	}
	for _, u := range inline.host {
		if u.GetKind() == "Job" || u.GetName() == "stateshift-karmada-objects" || u.GetName() == "stateshift-karmada-apply" {
			t.Errorf("inline mode renders %s %s", u.GetKind(), u.GetName())
		}
	}
}

// Bad values fail with a message that says what to change.
func TestBadValuesFail(t *testing.T) {
	cases := []struct {
		set, want string
	}{
		{"interpreter.replicas=0", "/interpreter/replicas"},
		{"certs.mode=vault", "/certs/mode"},
		{"interpreter.url=http://127.0.0.1:8443/interpreter", "/interpreter/url"},
		{"interpreter.timeoutSeconds=31", "/interpreter/timeoutSeconds"},
		{"interpreter.pdb.minAvailable=2", "must be below interpreter.replicas"},
		{"certs.mode=external", "certs.external.caBundle"},
		{"karmada.apply=helm", "/karmada/apply"},
		{"members.agent.builders={docker}", "/members/agent/builders"},
		{"interpreter.tlsMinVersion=1.1", "/interpreter/tlsMinVersion"},
		{"controller.extraArgs={kubeconfig}", "/controller/extraArgs"},
		{"unknown=1", "additional properties 'unknown'"},
	}
	for _, tc := range cases {
		_, err := Template(context.Background(), "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: err %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}
