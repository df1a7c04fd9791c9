//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/chart"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

// agentMetricsURL is member1's simulated-node agent (hack/local/stateshift.sh).
const agentMetricsURL = "http://127.0.0.1:19465/metrics"

func scrapeURL(ctx context.Context, url string) ([]chart.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s %v", url, resp.Status, err)
	}
	return chart.ParseScrape(body)
}

func has(samples []chart.Sample, name string, labels map[string]string) bool {
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		ok := true
		for k, v := range labels {
			ok = ok && s.Labels[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}

// protectedCondition checks a workload's Protected condition.
func protectedCondition(ns, policy, workload, reason string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy}, p); err != nil {
			return false, "", err
		}
		for _, w := range p.Status.Workloads {
			if c := meta.FindStatusCondition(w.Conditions, v1alpha1.ConditionProtected); w.Name == workload && c != nil {
				return c.Reason == reason && p.Status.OldestCheckpointTime != nil, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message), nil
			}
		}
		return false, fmt.Sprintf("status %+v", p.Status), nil
	}
}

// TestMonitoringAlertRules: the chart's alert rules evaluated by promtool
// against series scraped from the local environment's controller and
// agent while a workload is protected and moved, so a metric or label the
// rules (or the dashboard) name that the binaries do not export fails it.
// Also: the Protected condition and a Migration's Ready condition.
func TestMonitoringAlertRules(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-monitoring")
	protectedOnMember1(t, ns, framework.Deployment(ns, "web", 1), 10*time.Second, "", []string{framework.Member1, framework.Member2})
	framework.Eventually(t, moveTimeout, "Protected", protectedCondition(ns, "protect", "web", v1alpha1.ProtectedReasonProtected))

	before, err := scrapeURL(t.Context(), framework.InterpreterMetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	mig := toMember2(ns, "Deployment", "web")
	env.Create(t, mig)
	during := scrapeUnfinished(t, ns, mig.Name)
	framework.Eventually(t, moveTimeout, "Migration Restored", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	m, err := getMigration(t.Context(), ns, mig.Name)
	if err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != "True" || c.Reason != "Restored" {
		t.Fatalf("Restored Migration's Ready condition: %+v", c)
	}
	after, err := scrapeURL(t.Context(), framework.InterpreterMetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := scrapeURL(t.Context(), agentMetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if !has(after, "stateshift_migrations_total", map[string]string{"trigger": "Manual", "outcome": "Restored"}) ||
		!has(agent, "stateshift_build_info", map[string]string{"binary": "checkpoint-agent"}) {
		t.Fatal("no Restored count or no agent build info in the scrapes")
	}
	checkNamedMetricsExported(t, append(append(append(before, during...), after...), agent...))
	// The workload's series while it was protected (before the move), the
	// unfinished Migration's during it, the outcome counters after it.
	controller := append(onlyNamespace(before, ns), onlyNamespace(during, ns)...)
	chart.CheckAlertRules(t, chart.Scrapes{Controller: append(controller, after...), Agent: agent,
		AgentNamespace: "stateshift-system", AgentPod: "checkpoint-agent-member1"})
}

// scrapeUnfinished scrapes the controller every 100ms until a scrape
// shows the Migration unfinished (a move takes seconds).
func scrapeUnfinished(t *testing.T, ns, name string) []chart.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), moveTimeout)
	defer cancel()
	for {
		s, err := scrapeURL(ctx, framework.InterpreterMetricsURL)
		if err == nil && has(s, "stateshift_migration_unfinished_seconds", map[string]string{"namespace": ns, "migration": name}) {
			return s
		}
		if m, gerr := getMigration(ctx, ns, name); gerr == nil && m.IsFinished() {
			t.Fatalf("Migration %s finished (%s) before a scrape saw it unfinished (last scrape error: %v)", name, m.Status.Phase, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no scrape showed Migration %s unfinished: %v", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// onlyNamespace keeps the workload series of one namespace and every
// series without a namespace label (other tests' workloads stay out).
func onlyNamespace(samples []chart.Sample, ns string) []chart.Sample {
	var out []chart.Sample
	for _, s := range samples {
		if v, ok := s.Labels["namespace"]; !ok || v == ns {
			out = append(out, s)
		}
	}
	return out
}

// checkNamedMetricsExported: every stateshift metric the rules and the
// dashboard read is in the scrapes.
func checkNamedMetricsExported(t *testing.T, samples []chart.Sample) {
	t.Helper()
	full, _, err := chart.AlertRules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile(filepath.Join(chart.ChartDir(), "files", "dashboards", "stateshift.json"))
	if err != nil {
		t.Fatal(err)
	}
	exprs, err := chart.DashboardExprs(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range samples {
		exported[s.Name] = true
	}
	for _, name := range chart.MetricNames(string(full) + "\n" + strings.Join(exprs, "\n")) {
		if !exported[name] {
			t.Errorf("the rules or the dashboard read %s, which no scrape has", name)
		}
	}
}
