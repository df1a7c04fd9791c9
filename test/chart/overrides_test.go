package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
)

// overrideValues are two members on one machine, as the local environment
// and test/install have them.
const overrideValues = `
interpreter:
  url: https://127.0.0.23:8443/interpreter
members:
  podRestore:
    hostNetwork: true
    bindAddress: $(POD_IP)
  clusterOverrides:
    - clusterNames: [member1]
      apiServer: https://127.0.0.1:6443
      checkpointDir: /run/m1/kubelet/checkpoints
      kubeletCA: /run/pki/ca.crt
      journalHostPath: /run/m1/journal
      buildahStorageHostPath: /run/m1/buildah
      podRestoreURL: https://127.0.0.21:9443/mutate-pods
      agentArgs: [--max-attempts=8]
      podRestoreArgs: [--metrics-bind-address=127.0.0.1:28082]
    - clusterNames: [member2]
      apiServer: https://127.0.0.1:6444
      podRestoreURL: https://127.0.0.22:9443/mutate-pods
`

// overridden applies, as Karmada does, the plaintext overriders of the
// rule of `cluster` in ClusterOverridePolicy `policy` to the rendered
// object u, and decodes the result into out.
func overridden(t *testing.T, r rendered, policy, cluster string, u *unstructured.Unstructured, out any) {
	t.Helper()
	cop := typed[policyv1alpha1.ClusterOverridePolicy](t, r.findKarmada(t, "ClusterOverridePolicy", policy))
	sel := cop.Spec.ResourceSelectors[0]
	if sel.Kind != u.GetKind() || sel.Name != u.GetName() || sel.Namespace != u.GetNamespace() {
		t.Fatalf("%s selects %s %s/%s, not %s %s/%s", policy, sel.Kind, sel.Namespace, sel.Name, u.GetKind(), u.GetNamespace(), u.GetName())
	}
	doc, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range cop.Spec.OverrideRules {
		if len(rule.TargetCluster.ClusterNames) != 1 || rule.TargetCluster.ClusterNames[0] != cluster {
			continue
		}
		var ops []map[string]any
		for _, o := range rule.Overriders.Plaintext {
			op := map[string]any{"op": string(o.Operator), "path": o.Path}
			if o.Value.Raw != nil {
				op["value"] = json.RawMessage(o.Value.Raw)
			}
			ops = append(ops, op)
		}
		raw, _ := json.Marshal(ops)
		patch, err := jsonpatch.DecodePatch(raw)
		if err != nil {
			t.Fatal(err)
		}
		if doc, err = patch.Apply(doc); err != nil {
			t.Fatalf("%s on %s: %v", policy, cluster, err)
		}
	}
	if err := json.Unmarshal(doc, out); err != nil {
		t.Fatal(err)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestClusterOverridesRender: members.clusterOverrides become one
// ClusterOverridePolicy per member part whose patches, applied as Karmada
// applies them, give each member its API server, kubelet folders, host
// folders, webhook URL and arguments, and leave other members alone; the
// pod-restore certificate covers every webhook URL's host and the
// interpreter's covers interpreter.url's.
func TestClusterOverridesRender(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(overrideValues), 0o600); err != nil {
		t.Fatal(err)
	}
	r := render(t, "-f", values)
	dsU := r.findKarmada(t, "DaemonSet", "stateshift-checkpoint-agent")
	var ds appsv1.DaemonSet
	overridden(t, r, "stateshift-members-agent", "member1", dsU, &ds)
	agent := ds.Spec.Template.Spec.Containers[0]
	o := agentArgs(t, &ds)
	if o.CheckpointDir != "/run/m1/kubelet/checkpoints" || o.KubeletCA != "/run/pki/ca.crt" || o.MaxAttempts != 8 {
		t.Errorf("member1 agent flags: checkpoint dir %q, kubelet CA %q, max attempts %d", o.CheckpointDir, o.KubeletCA, o.MaxAttempts)
	}
	vols := map[string]string{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			vols[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]string{}
	for _, m := range agent.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	want := map[string]string{"checkpoints": "/run/m1/kubelet/checkpoints", "journal": "/run/m1/journal", "user-storage": "/run/m1/buildah", "kubelet-ca": "/run/pki/ca.crt"}
	for name, path := range want {
		if vols[name] != path {
			t.Errorf("member1 agent volume %s: host path %q, want %q", name, vols[name], path)
		}
	}
	if mounts["checkpoints"] != "/run/m1/kubelet/checkpoints" || mounts["kubelet-ca"] != "/run/pki/ca.crt" {
		t.Errorf("member1 agent mounts %v", mounts)
	}
	if envValue(agent, "KUBERNETES_SERVICE_HOST") != "127.0.0.1" || envValue(agent, "KUBERNETES_SERVICE_PORT") != "6443" {
		t.Errorf("member1 agent env %v", agent.Env)
	}
	var ds2 appsv1.DaemonSet
	overridden(t, r, "stateshift-members-agent", "member2", dsU, &ds2)
	if o2 := agentArgs(t, &ds2); o2.CheckpointDir != "/var/lib/kubelet/checkpoints" || envValue(ds2.Spec.Template.Spec.Containers[0], "KUBERNETES_SERVICE_PORT") != "6444" {
		t.Errorf("member2 agent: checkpoint dir %q, env %v", o2.CheckpointDir, ds2.Spec.Template.Spec.Containers[0].Env)
	}

	var pr appsv1.Deployment
	overridden(t, r, "stateshift-members-pod-restore", "member1", r.findKarmada(t, "Deployment", "stateshift-pod-restore"), &pr)
	c := pr.Spec.Template.Spec.Containers[0]
	if c.Args[len(c.Args)-1] != "--metrics-bind-address=127.0.0.1:28082" || envValue(c, "KUBERNETES_SERVICE_PORT") != "6443" {
		t.Errorf("member1 pod-restore args %v env %v", c.Args, c.Env)
	}

	mwcU := r.findKarmada(t, "MutatingWebhookConfiguration", "stateshift-pod-restore")
	prSecret := r.findKarmada(t, "Secret", "stateshift-pod-restore-certs")
	crt, _, _ := unstructured.NestedString(prSecret.Object, "data", "tls.crt")
	for cluster, host := range map[string]string{"member1": "127.0.0.21", "member2": "127.0.0.22"} {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		overridden(t, r, "stateshift-members-pod-restore-webhook", cluster, mwcU, &mwc)
		cc := mwc.Webhooks[0].ClientConfig
		if cc.Service != nil || cc.URL == nil || *cc.URL != "https://"+host+":9443/mutate-pods" {
			t.Errorf("%s pod-restore clientConfig %+v", cluster, cc)
		}
		verifyServing(t, cc.CABundle, decodeB64(t, crt), host)
	}

	secret := typed[corev1.Secret](t, r.find(t, "Secret", "stateshift-interpreter-webhook-certs"))
	cfg := r.findKarmada(t, "ResourceInterpreterWebhookConfiguration", "stateshift-interpreter")
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	bundle, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle")
	verifyServing(t, decodeB64(t, bundle), secret.Data["tls.crt"], "127.0.0.23")
}
