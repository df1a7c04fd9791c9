package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestSecurityRulesRender: the chart applies artifacts/security (its copy
// in files/security must be current) as security.* switches them, in the
// release namespace; the placement webhook points karmada-apiserver at the
// controller, whose certificate the caBundle verifies; checkpoint
// admission takes its creators from the values and, like the roles,
// reaches every member.
//
// The CEL itself is tested against a real API server in pkg/agent
// (TestSecurityCheckpointAdmission) and by test/install with every rule on.
func TestSecurityRulesRender(t *testing.T) {
	for _, f := range []string{"roles.yaml", "checkpoint-admission.yaml", "checkpoint-repositories.yaml", "migration-placement-webhook.yaml"} {
		src, err := os.ReadFile(filepath.Join(Root(), "artifacts", "security", f))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := os.ReadFile(filepath.Join(ChartDir(), "files", "security", f))
		if err != nil || string(cp) != string(src) {
			t.Errorf("charts/stateshift/files/security/%s differs from artifacts/security (run make artifacts): %v", f, err)
		}
	}

	def := render(t)
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ConfigMap"} {
		for _, u := range def.allKarmada() {
			if u.GetKind() == kind {
				t.Errorf("opt-in rule rendered by default: %s %s", kind, u.GetName())
			}
		}
	}
	vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, def.findKarmada(t, "ValidatingWebhookConfiguration", "stateshift-migration-placement"))
	cc := vwc.Webhooks[0].ClientConfig
	const host = "stateshift-migration-controller.stateshift-system.svc"
	if cc.Service != nil || cc.URL == nil || *cc.URL != "https://"+host+":443/validate-migration" {
		t.Errorf("placement webhook clientConfig %+v", cc)
	}
	secret := typed[corev1.Secret](t, def.find(t, "Secret", "stateshift-interpreter-webhook-certs"))
	verifyServing(t, cc.CABundle, secret.Data["tls.crt"], host)
	for _, role := range []string{"stateshift-view", "stateshift-edit"} {
		if def.findKarmada(t, "ClusterRole", role).GetLabels()["stateshift.io/deliver-to-members"] != "true" {
			t.Errorf("ClusterRole %s is not delivered to the members", role)
		}
	}

	values := filepath.Join(t.TempDir(), "values.yaml")
	b, _ := yaml.Marshal(map[string]any{"security": map[string]any{
		"repositoryAllowlist": map[string]any{"enabled": true},
		"checkpointAdmission": map[string]any{"enabled": true, "creators": map[string]any{"users": []string{"u1", "u2"}, "groups": []string{"g1"}}},
	}})
	if err := os.WriteFile(values, b, 0o600); err != nil {
		t.Fatal(err)
	}
	on := render(t, "-f", values, "--namespace", "other-ns")
	// The creators are CEL lists in the policy, not a ConfigMap parameter
	// (the API server stops watching a parameter ConfigMap when its policy
	// is deleted, and after a reinstall would refuse every Checkpoint).
	for _, u := range on.allKarmada() {
		if u.GetKind() == "ConfigMap" {
			t.Errorf("a parameter ConfigMap is rendered: %s", u.GetName())
		}
	}
	creators := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, on.findKarmada(t, "ValidatingAdmissionPolicy", "stateshift-checkpoint-creators"))
	vars := map[string]string{}
	for _, v := range creators.Spec.Variables {
		vars[v.Name] = v.Expression
	}
	if creators.Spec.ParamKind != nil || vars["users"] != `["u1","u2"]` || vars["groups"] != `["g1"]` ||
		creators.Labels["stateshift.io/deliver-to-members"] != "true" {
		t.Errorf("creators policy: paramKind %v variables %v labels %v", creators.Spec.ParamKind, vars, creators.Labels)
	}
	binding := typed[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, on.findKarmada(t, "ValidatingAdmissionPolicyBinding", "stateshift-checkpoint-creators"))
	if binding.Spec.ParamRef != nil {
		t.Errorf("creators binding paramRef %+v", binding.Spec.ParamRef)
	}
	status := on.findKarmada(t, "ValidatingAdmissionPolicy", "stateshift-checkpoint-status")
	statusVars, _, _ := unstructured.NestedSlice(status.Object, "spec", "variables")
	if !strings.Contains(statusVars[0].(map[string]any)["expression"].(string), "system:serviceaccount:other-ns:stateshift-checkpoint-agent") {
		t.Errorf("status policy names the agent of another namespace: %v", statusVars[0])
	}
	repos := on.findKarmada(t, "ValidatingAdmissionPolicy", "stateshift-checkpoint-repositories")
	if repos.GetLabels()["stateshift.io/deliver-to-members"] == "true" {
		t.Error("the repository allowlist belongs to the Karmada API only (CheckpointPolicies live there)")
	}
}
