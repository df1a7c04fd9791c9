package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// DashboardExprs lists the PromQL queries of a Grafana dashboard JSON.
func DashboardExprs(dashboard []byte) ([]string, error) {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("panel %q has no query", p.Title)
		}
		for _, t := range p.Targets {
			out = append(out, t.Expr)
		}
	}
	return out, nil
}

var metricName = regexp.MustCompile(`\bstateshift_[a-z_]+\b`)

// MetricNames lists the stateshift metric names a PromQL expression reads
// (histogram series names as written, e.g. ..._bucket).
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	for _, m := range metricName.FindAllString(expr, -1) {
		seen[m] = true
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// AlertRules renders the chart's PrometheusRule (the host's, with every
// group) with extra helm arguments and returns its groups as a Prometheus
// rule file. Annotations are left out: promtool's rule tests compare them
// as rendered, and what the tests check is when which alert fires with
// which labels (`promtool check rules` checks the annotation templates).
func AlertRules(ctx context.Context, extra ...string) (full, withoutAnnotations []byte, err error) {
	objs, err := Template(ctx, append([]string{"--set", "monitoring.prometheusRule.enabled=true"}, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range objs {
		if u.GetKind() != "PrometheusRule" || ForKarmada(u) {
			continue
		}
		groups, _, _ := unstructured.NestedSlice(u.Object, "spec", "groups")
		if full, err = yaml.Marshal(map[string]any{"groups": groups}); err != nil {
			return nil, nil, err
		}
		for _, g := range groups {
			rules, _ := g.(map[string]any)["rules"].([]any)
			for _, r := range rules {
				delete(r.(map[string]any), "annotations")
			}
		}
		withoutAnnotations, err = yaml.Marshal(map[string]any{"groups": groups})
		return full, withoutAnnotations, err
	}
	return nil, nil, fmt.Errorf("the chart rendered no PrometheusRule")
}

var (
	promtoolOnce sync.Once
	promtoolPath string
	promtoolErr  error
)

// Promtool returns the cached promtool binary, unpacking it on first use
// from Debian's prometheus package (hack/build-deps.sh promtool).
func Promtool() (string, error) {
	promtoolOnce.Do(func() {
		build := exec.Command("bash", filepath.Join(Root(), "hack", "build-deps.sh"), "promtool")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if promtoolErr = build.Run(); promtoolErr != nil {
			promtoolErr = fmt.Errorf("hack/build-deps.sh promtool: %w", promtoolErr)
			return
		}
		out, err := exec.Command("bash", "-c", ". "+filepath.Join(Root(), "hack", "lib.sh")+` && echo "${TOOLS_BIN}/promtool"`).Output()
		if err != nil {
			promtoolErr = fmt.Errorf("locate promtool: %w", err)
			return
		}
		promtoolPath = strings.TrimSpace(string(out))
	})
	return promtoolPath, promtoolErr
}

// RunPromtool runs promtool with args in dir, with a deadline.
func RunPromtool(ctx context.Context, dir string, args ...string) ([]byte, error) {
	bin, err := Promtool()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Sample is one series of a scrape in Prometheus's text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$`)

// ParseScrape reads a /metrics answer (text format; comments skipped).
func ParseScrape(text []byte) ([]Sample, error) {
	var out []Sample
	for i, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a sample: %q", i+1, line)
		}
		labels, err := parseLabels(m[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %w", i+1, err)
		}
		out = append(out, Sample{Name: m[1], Labels: labels, Value: v})
	}
	return out, nil
}

// parseLabels reads `a="x",b="y\"z"` (the text format's escapes: \\ \" \n).
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, ", ") {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			return nil, fmt.Errorf("labels %q", s)
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, fmt.Errorf("unterminated label value in %q", s)
		}
		out[strings.TrimSpace(name)] = v.String()
		s = rest[i+1:]
	}
	return out, nil
}

// Scrapes are the samples a test took from a running stateshift: the
// migration controller's /metrics and one agent's, with the namespace and
// pod the agent runs as (the labels a PodMonitor's target adds).
type Scrapes struct {
	Controller, Agent        []Sample
	AgentNamespace, AgentPod string
}

// find returns the first sample with this name whose labels include want.
func find(samples []Sample, name string, want map[string]string) (Sample, error) {
next:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for k, v := range want {
			if s.Labels[k] != v {
				continue next
			}
		}
		return s, nil
	}
	return Sample{}, fmt.Errorf("the scrape has no %s%v", name, want)
}

// seriesName writes a promtool series selector, labels sorted.
func seriesName(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func with(labels map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func pick(labels map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out[k] = labels[k]
	}
	return out
}

// promtool's rule test format.
type (
	ruleTestFile struct {
		RuleFiles          []string   `json:"rule_files"`
		EvaluationInterval string     `json:"evaluation_interval"`
		Tests              []ruleTest `json:"tests"`
	}
	ruleTest struct {
		Interval      string          `json:"interval"`
		InputSeries   []inputSeries   `json:"input_series"`
		AlertRuleTest []alertRuleTest `json:"alert_rule_test"`
	}
	inputSeries struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	alertRuleTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	expAlert struct {
		ExpLabels map[string]string `json:"exp_labels"`
	}
)

// minutesUntil is the first minute at which start+60*t exceeds limit,
// plus the alert's `for` and one evaluation.
func minutesUntil(start, limit float64, forMinutes int) int {
	t := 0
	for start+60*float64(t) <= limit {
		t++
	}
	return t + forMinutes + 1
}

// AlertRuleTest writes a promtool rule test (for the rule file rulesFile,
// default thresholds) that plays the scraped series forward: each alert
// gets the real labels of a scraped series, one history that must fire it
// and, beside it, one that must not (promtool fails on a missing and on an
// extra alert alike).
func AlertRuleTest(rulesFile string, s Scrapes) ([]byte, error) {
	t := ruleTest{Interval: "1m"}
	add := func(name string, labels map[string]string, values string) {
		t.InputSeries = append(t.InputSeries, inputSeries{Series: seriesName(name, labels), Values: values})
	}
	expect := func(at int, alert string, labels ...map[string]string) {
		a := alertRuleTest{EvalTime: fmt.Sprintf("%dm", at), Alertname: alert, ExpAlerts: []expAlert{}}
		for _, l := range labels {
			a.ExpAlerts = append(a.ExpAlerts, expAlert{ExpLabels: l})
		}
		t.AlertRuleTest = append(t.AlertRuleTest, a)
	}
	for _, step := range []func(add func(string, map[string]string, string), expect func(int, string, ...map[string]string), s Scrapes) error{
		dataLossAlerts, migrationAlerts, agentAlerts,
	} {
		if err := step(add, expect, s); err != nil {
			return nil, err
		}
	}
	return yaml.Marshal(ruleTestFile{RuleFiles: []string{rulesFile}, EvaluationInterval: "1m", Tests: []ruleTest{t}})
}

// dataLossAlerts: the checkpoint age grows with no new checkpoint (Stale;
// another cluster's stays young), the Protected condition turns to
// NoCheckpoint, and the plan is disarmed.
func dataLossAlerts(add func(string, map[string]string, string), expect func(int, string, ...map[string]string), s Scrapes) error {
	age, err := find(s.Controller, "stateshift_checkpoint_age_seconds", nil)
	if err != nil {
		return err
	}
	w := pick(age.Labels, "namespace", "policy", "kind", "workload")
	interval, err := find(s.Controller, "stateshift_checkpoint_interval_seconds", pick(w, "namespace", "policy"))
	if err != nil {
		return err
	}
	protected, err := find(s.Controller, "stateshift_workload_protected", with(w, "reason", "Protected"))
	if err != nil {
		return err
	}
	armed, err := find(s.Controller, "stateshift_workload_armed", w)
	if err != nil {
		return err
	}
	age.Value = math.Round(age.Value) // the series starts at a whole second
	add(age.Name, age.Labels, fmt.Sprintf("%.0f+60x60", age.Value))
	add(age.Name, with(age.Labels, "cluster", "a-fresh-cluster"), "5x60")
	add(interval.Name, interval.Labels, fmt.Sprintf("%gx60", interval.Value))
	at := minutesUntil(age.Value, 3*interval.Value, 1)
	expect(at, "StateshiftCheckpointStale", with(pick(age.Labels, "namespace", "policy", "kind", "workload", "cluster"), "severity", "critical"))
	add(protected.Name, protected.Labels, "1x10")
	add(protected.Name, with(protected.Labels, "reason", "NoCheckpoint"), "_x10 0x50")
	expect(20, "StateshiftWorkloadUnprotected")
	expect(30, "StateshiftWorkloadUnprotected", with(w, "reason", "NoCheckpoint", "severity", "critical"))
	add(armed.Name, armed.Labels, "1x5 0x55")
	expect(10, "StateshiftRestorePlanDisarmed")
	expect(20, "StateshiftRestorePlanDisarmed", with(w, "severity", "warning"))
	return nil
}

// migrationAlerts: a scraped unfinished Migration that never finishes,
// and one FellBack move beside a Restored one.
func migrationAlerts(add func(string, map[string]string, string), expect func(int, string, ...map[string]string), s Scrapes) error {
	running, err := find(s.Controller, "stateshift_migration_unfinished_seconds", nil)
	if err != nil {
		return err
	}
	fellBack, err := find(s.Controller, "stateshift_migrations_total", map[string]string{"trigger": "Manual", "outcome": "FellBack"})
	if err != nil {
		return err
	}
	restored, err := find(s.Controller, "stateshift_migrations_total", map[string]string{"trigger": "Manual", "outcome": "Restored"})
	if err != nil {
		return err
	}
	running.Value = math.Round(running.Value)
	add(running.Name, running.Labels, fmt.Sprintf("%.0f+60x60", running.Value))
	expect(10, "StateshiftMigrationStuck")
	expect(minutesUntil(running.Value, 1800, 1), "StateshiftMigrationStuck",
		with(pick(running.Labels, "namespace", "migration", "kind", "workload", "trigger", "phase"), "severity", "warning"))
	add(fellBack.Name, fellBack.Labels, fmt.Sprintf("%gx10 %gx50", fellBack.Value, fellBack.Value+1))
	add(restored.Name, restored.Labels, fmt.Sprintf("%gx10 %gx50", restored.Value, restored.Value+1))
	expect(20, "StateshiftMigrationNotRestored", map[string]string{"trigger": "Manual", "outcome": "FellBack", "severity": "warning"})
	return nil
}

// agentAlerts: one agent's pushes fail once a minute; its verifications
// do not.
func agentAlerts(add func(string, map[string]string, string), expect func(int, string, ...map[string]string), s Scrapes) error {
	push, err := find(s.Agent, "stateshift_agent_push_failures_total", map[string]string{"reason": "PushFailed"})
	if err != nil {
		return err
	}
	verify, err := find(s.Agent, "stateshift_agent_push_failures_total", map[string]string{"reason": "VerifyFailed"})
	if err != nil {
		return err
	}
	target := []string{"namespace", s.AgentNamespace, "pod", s.AgentPod}
	add(push.Name, with(push.Labels, target...), fmt.Sprintf("%g+1x60", push.Value))
	add(verify.Name, with(verify.Labels, target...), fmt.Sprintf("%gx60", verify.Value))
	expect(1, "StateshiftCheckpointPushesFailing")
	expect(20, "StateshiftCheckpointPushesFailing", map[string]string{"namespace": s.AgentNamespace, "pod": s.AgentPod, "reason": "PushFailed", "severity": "warning"})
	return nil
}

// CheckAlertRules runs `promtool check rules` on the chart's rules and
// `promtool test rules` with the histories AlertRuleTest plays from the
// scrapes; the e2e suite calls it with scrapes of the local environment.
func CheckAlertRules(t testing.TB, s Scrapes) {
	t.Helper()
	ctx := context.Background()
	full, bare, err := AlertRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	test, err := AlertRuleTest("rules.yaml", s)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"full.yaml": full, "rules.yaml": bare, "test.yaml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := RunPromtool(ctx, dir, "check", "rules", "full.yaml"); err != nil {
		t.Fatalf("%v\n%s", err, full)
	} else if !strings.Contains(string(out), "SUCCESS: 6 rules found") {
		t.Fatalf("promtool check rules: %s", out)
	}
	if _, err := RunPromtool(ctx, dir, "test", "rules", "test.yaml"); err != nil {
		t.Fatalf("%v\ntest:\n%s", err, test)
	}
}
