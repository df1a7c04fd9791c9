package chart

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	agentoptions "github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
)

var monitoringOn = []string{"--set", "monitoring.podMonitors.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.grafanaDashboard.enabled=true"}

func agentArgs(t *testing.T, ds *appsv1.DaemonSet) *agentoptions.Options {
	t.Helper()
	o := agentoptions.New()
	fs := pflag.NewFlagSet("checkpoint-agent", pflag.ContinueOnError)
	o.AddFlags(fs)
	args := slices.Clone(ds.Spec.Template.Spec.Containers[0].Args)
	for i, a := range args { // the env expansions the kubelet does
		args[i] = strings.NewReplacer("$(NODE_NAME)", "node-1", "$(POD_NAMESPACE)", ns).Replace(a)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("agent args %v: %v", args, err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("agent args %v: %v", args, err)
	}
	return o
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func hasRule(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// By default the agents serve authenticated HTTPS metrics on the nodes,
// with the RBAC that checks callers, and no monitoring object renders.
func TestAgentMetricsSecureByDefault(t *testing.T) {
	r := render(t)
	ds := typed[appsv1.DaemonSet](t, r.findKarmada(t, "DaemonSet", "stateshift-checkpoint-agent"))
	o := agentArgs(t, ds)
	if !o.MetricsSecure || o.MetricsBindAddress != "$(POD_IP):9465" || containerPort(ds.Spec.Template.Spec.Containers[0], "metrics") != 9465 {
		t.Errorf("agent metrics: secure %v on %q, port %d", o.MetricsSecure, o.MetricsBindAddress, containerPort(ds.Spec.Template.Spec.Containers[0], "metrics"))
	}
	role := typed[rbacv1.ClusterRole](t, r.findKarmada(t, "ClusterRole", "stateshift-checkpoint-agent"))
	if !hasRule(role.Rules, "authentication.k8s.io", "tokenreviews", "create") || !hasRule(role.Rules, "authorization.k8s.io", "subjectaccessreviews", "create") {
		t.Errorf("the agent cannot review callers: %+v", role.Rules)
	}
	reader := typed[rbacv1.ClusterRole](t, r.findKarmada(t, "ClusterRole", "stateshift-metrics-reader"))
	if len(reader.Rules) != 1 || !slices.Equal(reader.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(reader.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("metrics reader grants %+v, want get /metrics only", reader.Rules)
	}
	for _, u := range append(r.host, r.allKarmada()...) {
		if u.GetKind() == "PodMonitor" || u.GetKind() == "PrometheusRule" || strings.HasSuffix(u.GetName(), "-dashboard") {
			t.Errorf("monitoring is off by default, yet %s %s renders", u.GetKind(), u.GetName())
		}
	}
}

func TestAgentMetricsLoopback(t *testing.T) {
	r := render(t, append(monitoringOn, "--set", "members.agent.metrics.mode=loopback")...)
	ds := typed[appsv1.DaemonSet](t, r.findKarmada(t, "DaemonSet", "stateshift-checkpoint-agent"))
	if o := agentArgs(t, ds); o.MetricsSecure || o.MetricsBindAddress != "127.0.0.1:9465" || containerPort(ds.Spec.Template.Spec.Containers[0], "metrics") != 0 {
		t.Errorf("loopback metrics: secure %v on %q", o.MetricsSecure, o.MetricsBindAddress)
	}
	role := typed[rbacv1.ClusterRole](t, r.findKarmada(t, "ClusterRole", "stateshift-checkpoint-agent"))
	if hasRule(role.Rules, "authentication.k8s.io", "tokenreviews", "create") {
		t.Error("loopback agents need no TokenReviews")
	}
	for _, u := range r.allKarmada() {
		if u.GetKind() == "PodMonitor" || u.GetName() == "stateshift-metrics-reader" {
			t.Errorf("loopback agents cannot be scraped, yet %s %s renders", u.GetKind(), u.GetName())
		}
	}
}

// selects says whether a PodMonitor's selector picks pods with these labels.
func selects(t *testing.T, pm *unstructured.Unstructured, podLabels map[string]string) bool {
	t.Helper()
	sel, _, _ := unstructured.NestedMap(pm.Object, "spec", "selector")
	raw, _ := json.Marshal(sel)
	var ls struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []struct {
			Key      string   `json:"key"`
			Operator string   `json:"operator"`
			Values   []string `json:"values"`
		} `json:"matchExpressions"`
	}
	if err := json.Unmarshal(raw, &ls); err != nil {
		t.Fatal(err)
	}
	s := labels.SelectorFromSet(ls.MatchLabels)
	for _, e := range ls.MatchExpressions {
		if e.Operator != "In" {
			t.Fatalf("operator %s", e.Operator)
		}
		if !slices.Contains(e.Values, podLabels[e.Key]) {
			return false
		}
	}
	return s.Matches(labels.Set(podLabels))
}

func endpoint(t *testing.T, pm *unstructured.Unstructured) map[string]any {
	t.Helper()
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(eps) != 1 {
		t.Fatalf("%s endpoints %v", pm.GetName(), eps)
	}
	return eps[0].(map[string]any)
}

// The PodMonitors pick the pods that serve metrics, by a port those pods
// name; the agents' one authenticates with a token allowed to read them.
func TestPodMonitors(t *testing.T) {
	r := render(t, monitoringOn...)
	host := r.find(t, "PodMonitor", "stateshift")
	if ep := endpoint(t, host); ep["port"] != "metrics" || ep["honorLabels"] != true {
		t.Errorf("host endpoint %v: the controller's namespace label must win", ep)
	}
	for _, name := range []string{"stateshift-interpreter-webhook", "stateshift-migration-controller"} {
		d := typed[appsv1.Deployment](t, r.find(t, "Deployment", name))
		if !selects(t, host, d.Spec.Template.Labels) || containerPort(d.Spec.Template.Spec.Containers[0], "metrics") == 0 {
			t.Errorf("PodMonitor does not scrape %s (labels %v)", name, d.Spec.Template.Labels)
		}
	}
	agents := r.findKarmada(t, "PodMonitor", "stateshift-checkpoint-agent")
	ds := typed[appsv1.DaemonSet](t, r.findKarmada(t, "DaemonSet", "stateshift-checkpoint-agent"))
	ep := endpoint(t, agents)
	secret, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
	if !selects(t, agents, ds.Spec.Template.Labels) || ep["port"] != "metrics" || ep["scheme"] != "https" || secret != "stateshift-metrics-scraper-token" {
		t.Errorf("agent PodMonitor endpoint %v", ep)
	}
	tok := r.findKarmada(t, "Secret", secret)
	if tok.GetAnnotations()["kubernetes.io/service-account.name"] != "stateshift-metrics-scraper" || tok.Object["type"] != "kubernetes.io/service-account-token" {
		t.Errorf("token Secret %v", tok.Object)
	}
	crb := typed[rbacv1.ClusterRoleBinding](t, r.findKarmada(t, "ClusterRoleBinding", "stateshift-metrics-scraper"))
	if crb.RoleRef.Name != "stateshift-metrics-reader" || crb.Subjects[0].Name != "stateshift-metrics-scraper" || crb.Subjects[0].Namespace != ns {
		t.Errorf("scraper binding %+v", crb)
	}
	// Karmada delivers them (the members' PrometheusRule too).
	cpp := r.findKarmada(t, "ClusterPropagationPolicy", "stateshift-members")
	selectors, _, _ := unstructured.NestedSlice(cpp.Object, "spec", "resourceSelectors")
	kinds := map[string]bool{}
	for _, s := range selectors {
		kinds[s.(map[string]any)["kind"].(string)] = true
	}
	r.findKarmada(t, "PrometheusRule", "stateshift-checkpoint-agent")
	if !kinds["PodMonitor"] || !kinds["PrometheusRule"] {
		t.Errorf("the ClusterPropagationPolicy selects %v", kinds)
	}
}

// Every alert has an expression, a severity and a summary; the values set
// the thresholds.
func TestPrometheusRuleValues(t *testing.T) {
	r := render(t, "--set", "monitoring.prometheusRule.enabled=true,monitoring.prometheusRule.staleIntervals=5,monitoring.prometheusRule.severity.critical=page")
	groups, _, _ := unstructured.NestedSlice(r.find(t, "PrometheusRule", "stateshift").Object, "spec", "groups")
	alerts := map[string]map[string]any{}
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, rule := range rules {
			m := rule.(map[string]any)
			alerts[m["alert"].(string)] = m
		}
	}
	for _, want := range []string{"StateshiftCheckpointStale", "StateshiftWorkloadUnprotected", "StateshiftRestorePlanDisarmed",
		"StateshiftMigrationStuck", "StateshiftMigrationNotRestored", "StateshiftCheckpointPushesFailing"} {
		a := alerts[want]
		summary, _, _ := unstructured.NestedString(a, "annotations", "summary")
		severity, _, _ := unstructured.NestedString(a, "labels", "severity")
		if a == nil || a["expr"] == "" || summary == "" || severity == "" {
			t.Errorf("alert %s: %v", want, a)
		}
	}
	stale := alerts["StateshiftCheckpointStale"]
	if !strings.Contains(stale["expr"].(string), "(5 * max by (namespace, policy) (stateshift_checkpoint_interval_seconds))") ||
		stale["labels"].(map[string]any)["severity"] != "page" {
		t.Errorf("staleIntervals/severity not applied: %v", stale)
	}
}

// The dashboard is valid JSON whose panels all query stateshift metrics.
func TestGrafanaDashboard(t *testing.T) {
	r := render(t, "--set", "monitoring.grafanaDashboard.enabled=true")
	cm := typed[corev1.ConfigMap](t, r.find(t, "ConfigMap", "stateshift-dashboard"))
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v: Grafana's sidecar selects grafana_dashboard", cm.Labels)
	}
	exprs, err := DashboardExprs([]byte(cm.Data["stateshift.json"]))
	if err != nil || len(exprs) < 10 {
		t.Fatalf("dashboard: %d queries, %v", len(exprs), err)
	}
	for _, e := range exprs {
		if !strings.Contains(e, "stateshift_") {
			t.Errorf("query %q reads no stateshift metric", e)
		}
	}
}

func TestMonitoringBadValuesFail(t *testing.T) {
	for set, want := range map[string]string{
		"members.agent.metrics.mode=plain":                  "/members/agent/metrics/mode",
		"monitoring.prometheusRule.staleIntervals=1":        "/monitoring/prometheusRule/staleIntervals",
		"monitoring.prometheusRule.disarmedFor=ten minutes": "/monitoring/prometheusRule/disarmedFor",
		"monitoring.podMonitors.scheme=http":                "additional properties 'scheme'",
	} {
		_, err := Template(context.Background(), "--set", set)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--set %s: err %v, want one mentioning %q", set, err, want)
		}
	}
}
