//go:build e2e

package e2e

// TestInterpreterConfiguration checks, against the real Karmada v1.18.2 of
// the local environment, that applying stateshift's
// ResourceInterpreterWebhookConfiguration (hack/apply-interpreter-config.sh)
// really routes Karmada's interpretation of StatefulSets and Deployments
// through the webhook, and that deleting it gives Karmada its native
// behaviour back. The expected answers are not written down here: they are
// asked of the running webhook itself, over HTTPS, with the same objects
// Karmada sees. The webhook counts those requests too, so the test counts
// its own and subtracts them before judging what Karmada sent.

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/resourceinterpreter/default/native"

	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

var interpreterLogs = []string{"interpreter-webhook", "karmada-controller-manager", "karmada-scheduler", "nodesim-member1"}

// The operations Karmada must send for a propagated, divided StatefulSet
// whose member copy it updates.
var karmadaOperations = []configv1alpha1.InterpreterOperation{
	configv1alpha1.InterpreterOperationInterpretReplica,
	configv1alpha1.InterpreterOperationReviseReplica,
	configv1alpha1.InterpreterOperationInterpretStatus,
	configv1alpha1.InterpreterOperationInterpretHealth,
	configv1alpha1.InterpreterOperationAggregateStatus,
	configv1alpha1.InterpreterOperationRetain,
}

// asker sends requests to the running webhook and remembers how many of
// each it sent, so the webhook's counters can be corrected for them.
type asker struct {
	sent map[string]float64 // "operation/kind"
}

func (a *asker) ask(ctx context.Context, op configv1alpha1.InterpreterOperation, obj *unstructured.Unstructured, fill func(*configv1alpha1.ResourceInterpreterRequest)) (*configv1alpha1.ResourceInterpreterResponse, error) {
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	gvk := obj.GroupVersionKind()
	req := configv1alpha1.ResourceInterpreterRequest{
		UID:       types.UID(uuid.NewUUID()),
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: op,
		Object:    runtime.RawExtension{Raw: raw},
	}
	if fill != nil {
		fill(&req)
	}
	a.sent[string(op)+"/"+gvk.Kind]++
	return env.Interpret(ctx, req)
}

var (
	statefulSetGVK = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	deploymentGVK  = appsv1.SchemeGroupVersion.WithKind("Deployment")
)

func getObject(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)
	return u, err
}

func memberItem(rb *workv1alpha2.ResourceBinding, cluster string) *workv1alpha2.AggregatedStatusItem {
	for i := range rb.Status.AggregatedStatus {
		if rb.Status.AggregatedStatus[i].ClusterName == cluster {
			return &rb.Status.AggregatedStatus[i]
		}
	}
	return nil
}

func decodeRaw(raw *runtime.RawExtension) (map[string]interface{}, error) {
	out := map[string]interface{}{}
	if raw == nil || len(raw.Raw) == 0 {
		return out, nil
	}
	err := json.Unmarshal(raw.Raw, &out)
	return out, err
}

// jsonValue is v as encoding/json decodes it (numbers as float64), so that
// values read by different decoders compare equal.
func jsonValue(v interface{}) interface{} {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return err.Error()
	}
	return out
}

func compact(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// replicasMatch: the binding's replicas and requirements are the webhook's
// InterpretReplica answer for the template Karmada holds.
func (a *asker) replicasMatch(gvk schema.GroupVersionKind, ns, name string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		tmpl, err := getObject(ctx, env.Karmada, gvk, ns, name)
		if err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, gvk.Kind, name)
		if err != nil {
			return false, "", err
		}
		resp, err := a.ask(ctx, configv1alpha1.InterpreterOperationInterpretReplica, tmpl, nil)
		if err != nil {
			return false, "", err
		}
		want := resp.ReplicaRequirements
		if want != nil && want.Namespace == "" && rb.Spec.ReplicaRequirements != nil && rb.Spec.ReplicaRequirements.Namespace == ns {
			// Karmada fills the namespace itself with ResourceQuotaEstimate on.
			want = want.DeepCopy()
			want.Namespace = ns
		}
		saw := fmt.Sprintf("binding replicas=%d requirements=%s; webhook replicas=%v requirements=%s",
			rb.Spec.Replicas, compact(rb.Spec.ReplicaRequirements), ptrString(resp.Replicas), compact(want))
		ok := resp.Replicas != nil && rb.Spec.Replicas == *resp.Replicas &&
			want != nil && len(want.ResourceRequest) > 0 &&
			equality.Semantic.DeepEqual(rb.Spec.ReplicaRequirements, want)
		return ok, saw, nil
	}
}

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// aggregatedStatusMatches: the template's status is what the webhook's
// AggregateStatus makes of the template and the binding's per-cluster
// statuses, and it reports all `ready` replicas.
func (a *asker) aggregatedStatusMatches(gvk schema.GroupVersionKind, ns, name string, ready int64) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		tmpl, err := getObject(ctx, env.Karmada, gvk, ns, name)
		if err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, gvk.Kind, name)
		if err != nil {
			return false, "", err
		}
		resp, err := a.ask(ctx, configv1alpha1.InterpreterOperationAggregateStatus, tmpl, func(r *configv1alpha1.ResourceInterpreterRequest) {
			r.AggregatedStatus = rb.Status.AggregatedStatus
		})
		if err != nil {
			return false, "", err
		}
		doc, err := json.Marshal(tmpl.Object)
		if err != nil {
			return false, "", err
		}
		if len(resp.Patch) > 0 {
			patch, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				return false, "", fmt.Errorf("AggregateStatus patch %s: %w", resp.Patch, err)
			}
			if doc, err = patch.Apply(doc); err != nil {
				return false, "", fmt.Errorf("apply AggregateStatus patch %s: %w", resp.Patch, err)
			}
		}
		var want map[string]interface{}
		if err := json.Unmarshal(doc, &want); err != nil {
			return false, "", err
		}
		got, _, _ := unstructured.NestedMap(tmpl.Object, "status")
		wantStatus, _, _ := unstructured.NestedMap(want, "status")
		readyGot, _, _ := unstructured.NestedInt64(tmpl.Object, "status", "readyReplicas")
		saw := fmt.Sprintf("template status %s; webhook aggregate %s", compact(got), compact(wantStatus))
		return readyGot == ready && reflect.DeepEqual(jsonValue(got), jsonValue(wantStatus)), saw, nil
	}
}

// reflectedStatusMatches: rb.status.aggregatedStatus[cluster] holds what the
// webhook's InterpretStatus and InterpretHealth answer for the member's
// object; extra checks the reflected status (nil: anything).
func (a *asker) reflectedStatusMatches(gvk schema.GroupVersionKind, cluster, ns, name string, extra func(status map[string]interface{}) (bool, string)) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		obj, err := getObject(ctx, env.Members[cluster], gvk, ns, name)
		if err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, gvk.Kind, name)
		if err != nil {
			return false, "", err
		}
		item := memberItem(rb, cluster)
		if item == nil {
			return false, "no aggregatedStatus item for " + cluster, nil
		}
		status, err := a.ask(ctx, configv1alpha1.InterpreterOperationInterpretStatus, obj, nil)
		if err != nil {
			return false, "", err
		}
		health, err := a.ask(ctx, configv1alpha1.InterpreterOperationInterpretHealth, obj, nil)
		if err != nil {
			return false, "", err
		}
		want, err := decodeRaw(status.RawStatus)
		if err != nil {
			return false, "", err
		}
		got, err := decodeRaw(item.Status)
		if err != nil {
			return false, "", err
		}
		wantHealth := workv1alpha2.ResourceUnhealthy
		if health.Healthy != nil && *health.Healthy {
			wantHealth = workv1alpha2.ResourceHealthy
		}
		saw := fmt.Sprintf("binding %s status %s health %s; webhook status %s health %s",
			cluster, compact(got), item.Health, compact(want), wantHealth)
		ok := reflect.DeepEqual(got, want) && item.Health == wantHealth
		if ok && extra != nil {
			var more string
			ok, more = extra(got)
			saw += "; " + more
		}
		return ok, saw, nil
	}
}

// stateshiftBlock checks the reflected status's stateshift block names
// checkpoint (or, with "", that there is none).
func stateshiftBlock(checkpoint string) func(map[string]interface{}) (bool, string) {
	return func(status map[string]interface{}) (bool, string) {
		got, _, _ := unstructured.NestedString(status, restore.StatusField, "restoredFrom")
		_, present := status[restore.StatusField]
		if checkpoint == "" {
			return !present, fmt.Sprintf("stateshift block present=%t", present)
		}
		return got == checkpoint, fmt.Sprintf("stateshift.restoredFrom=%q", got)
	}
}

func annotateMember(ctx context.Context, cluster string, gvk schema.GroupVersionKind, ns, name string, annotations map[string]string) error {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	obj.SetNamespace(ns)
	obj.SetName(name)
	patch, err := json.Marshal(map[string]interface{}{"metadata": map[string]interface{}{"annotations": annotations}})
	if err != nil {
		return err
	}
	return env.Members[cluster].Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

func scrape(t *testing.T) framework.InterpreterCounters {
	t.Helper()
	c, err := env.InterpreterRequests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInterpreterConfiguration(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, interpreterLogs...)
	ctx := t.Context()

	// The test applies the configuration itself, as a user would, so it does
	// not depend on what ran before; the script is idempotent.
	out, err := env.ApplyInterpreterConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hack/apply-interpreter-config.sh: %s", lastLine(out))
	// Whatever happens below, leave the configuration applied for the next tests.
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := env.ApplyInterpreterConfig(cctx); err != nil {
			t.Errorf("restore: %v", err)
		}
	})
	cfg := &configv1alpha1.ResourceInterpreterWebhookConfiguration{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Name: framework.InterpreterConfigName}, cfg); err != nil {
		t.Fatalf("configuration after the script: %v", err)
	}
	for _, w := range cfg.Webhooks {
		if w.ClientConfig.URL == nil || *w.ClientConfig.URL != framework.InterpreterURL || len(w.ClientConfig.CABundle) == 0 {
			t.Fatalf("webhook %s: clientConfig %+v, want url %s with a caBundle", w.Name, w.ClientConfig, framework.InterpreterURL)
		}
	}

	a := &asker{sent: map[string]float64{}}
	before := scrape(t)

	ns := env.Namespace(t, "e2e-interpreter")
	sts := framework.StatefulSet(ns, "db", 2)
	deploy := framework.Deployment(ns, "web", 2)
	env.Create(t, sts, deploy, framework.PropagationPolicy(ns, "to-member1", []string{framework.Member1}, sts, deploy))
	framework.Eventually(t, scheduleTimeout, "statefulset pods Running on member1", env.PodsRunning(framework.Member1, ns, "db", 2))
	framework.Eventually(t, scheduleTimeout, "deployment pods Running on member1", env.PodsRunning(framework.Member1, ns, "web", 2))

	for _, w := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{statefulSetGVK, "db"}, {deploymentGVK, "web"}} {
		framework.Eventually(t, time.Minute, w.gvk.Kind+": binding replicas and requirements are the webhook's InterpretReplica",
			a.replicasMatch(w.gvk, ns, w.name))
		framework.Eventually(t, time.Minute, w.gvk.Kind+": member1 status in the binding is the webhook's InterpretStatus/InterpretHealth",
			a.reflectedStatusMatches(w.gvk, framework.Member1, ns, w.name, stateshiftBlock("")))
		framework.Eventually(t, time.Minute, w.gvk.Kind+": template status is the webhook's AggregateStatus",
			a.aggregatedStatusMatches(w.gvk, ns, w.name, 2))
	}

	// The restore on the member object reaches the binding through the
	// webhook's InterpretStatus (Karmada's own has no such block). The
	// agent's checkpoint annotations ride along.
	checkpoint := "db-e2e-" + strings.ToLower(string(uuid.NewUUID())[:8])
	if err := annotateMember(ctx, framework.Member1, statefulSetGVK, ns, "db", map[string]string{
		restore.AnnotationRestoredFrom:         checkpoint,
		restore.AnnotationLatestCheckpoint:     checkpoint,
		restore.AnnotationLatestCheckpointTime: time.Now().UTC().Format(time.RFC3339),
	}); err != nil {
		t.Fatalf("annotate member1's StatefulSet: %v", err)
	}
	framework.Eventually(t, time.Minute, "member1's restore reflected into the binding",
		a.reflectedStatusMatches(statefulSetGVK, framework.Member1, ns, "db", stateshiftBlock(checkpoint)))

	// Karmada's next update of the member object (a template change) keeps
	// the member's stateshift annotations (Retain).
	tmpl := &appsv1.StatefulSet{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, tmpl); err != nil {
		t.Fatal(err)
	}
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels["e2e.stateshift.io/touched"] = "1"
	if err := env.Karmada.Update(ctx, tmpl); err != nil {
		t.Fatalf("change the template: %v", err)
	}
	framework.Eventually(t, time.Minute, "Karmada applied the template change and kept the checkpoint annotation", func(ctx context.Context) (bool, string, error) {
		m := &appsv1.StatefulSet{}
		if err := env.Members[framework.Member1].Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, m); err != nil {
			return false, "", err
		}
		saw := fmt.Sprintf("member label touched=%q annotation %s=%q", m.Labels["e2e.stateshift.io/touched"],
			restore.AnnotationLatestCheckpoint, m.Annotations[restore.AnnotationLatestCheckpoint])
		if m.Labels["e2e.stateshift.io/touched"] != "1" {
			return false, saw, nil
		}
		if m.Annotations[restore.AnnotationLatestCheckpoint] != checkpoint {
			t.Fatalf("Karmada's update dropped the member's checkpoint annotation: %s", saw)
		}
		return true, saw, nil
	})
	// A restored-from that no restore wrote (here set by hand on the member,
	// its pod template untouched) is not kept: a member user cannot pin
	// the member copy away from its template (issue 12, finding 9).
	framework.Eventually(t, time.Minute, "a hand-set restored-from is gone from the binding after the update",
		a.reflectedStatusMatches(statefulSetGVK, framework.Member1, ns, "db", stateshiftBlock("")))

	// The webhook counted Karmada's requests (its own counters, minus ours).
	after := scrape(t)
	for _, op := range karmadaOperations {
		for _, kind := range []string{"StatefulSet", "Deployment"} {
			if kind == "Deployment" && op == configv1alpha1.InterpreterOperationRetain {
				continue // the Deployment's member copy was never changed
			}
			key := string(op) + "/" + kind
			karmada := after.Sum(string(op), kind) - before.Sum(string(op), kind) - a.sent[key]
			t.Logf("stateshift_interpreter_requests_total{operation=%q,kind=%q}: +%.0f from Karmada (+%.0f from this test)",
				op, kind, karmada, a.sent[key])
			if karmada <= 0 {
				t.Errorf("Karmada sent no %s for %s to the webhook (counter %v -> %v, %v sent by the test)",
					op, kind, before.Sum(string(op), kind), after.Sum(string(op), kind), a.sent[key])
			}
		}
	}
	if errs := failures(after) - failures(before); errs > 0 {
		t.Errorf("the webhook answered %.0f requests with an error or a rejection while Karmada used it", errs)
	}
	if t.Failed() {
		return
	}

	// Removing the configuration gives Karmada its native interpreter back.
	out, err = env.DeleteInterpreterConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hack/apply-interpreter-config.sh --delete: %s", lastLine(out))
	// Karmada's native InterpretStatus has no stateshift block: once the
	// member's next change is reflected without it, Karmada has dropped the
	// webhook. Each poll changes the member object a little to make Karmada
	// reflect its status again.
	poke := 0
	framework.Eventually(t, time.Minute, "Karmada reflects member1's status natively (no stateshift block)", func(ctx context.Context) (bool, string, error) {
		poke++
		if err := annotateMember(ctx, framework.Member1, statefulSetGVK, ns, "db", map[string]string{"e2e.stateshift.io/poke": fmt.Sprint(poke)}); err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		item := memberItem(rb, framework.Member1)
		if item == nil {
			return false, "no member1 item", nil
		}
		status, err := decodeRaw(item.Status)
		if err != nil {
			return false, "", err
		}
		ok, saw := stateshiftBlock("")(status)
		// The member still says it has a checkpoint: only the interpreter changed.
		m := &appsv1.StatefulSet{}
		if err := env.Members[framework.Member1].Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, m); err != nil {
			return false, "", err
		}
		if m.Annotations[restore.AnnotationLatestCheckpoint] != checkpoint {
			t.Fatalf("member1's StatefulSet lost its %s annotation: %v", restore.AnnotationLatestCheckpoint, m.Annotations)
		}
		return ok, saw + " " + compact(status), nil
	})
	// Let Karmada finish what the pokes started before counting.
	time.Sleep(3 * time.Second)
	frozen := scrape(t)

	tmpl = &appsv1.StatefulSet{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, tmpl); err != nil {
		t.Fatal(err)
	}
	tmpl.Spec.Replicas = ptr.To[int32](3)
	if err := env.Karmada.Update(ctx, tmpl); err != nil {
		t.Fatalf("scale the template to 3: %v", err)
	}
	framework.Eventually(t, scheduleTimeout, "scaled StatefulSet runs 3 pods on member1", env.PodsRunning(framework.Member1, ns, "db", 3))
	framework.Eventually(t, time.Minute, "binding replicas and requirements are Karmada's native ones", func(ctx context.Context) (bool, string, error) {
		obj, err := getObject(ctx, env.Karmada, statefulSetGVK, ns, "db")
		if err != nil {
			return false, "", err
		}
		replicas, requirements, err := native.NewDefaultInterpreter().GetReplicas(obj)
		if err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		saw := fmt.Sprintf("binding replicas=%d requirements=%s; native replicas=%d requirements=%s",
			rb.Spec.Replicas, compact(rb.Spec.ReplicaRequirements), replicas, compact(requirements))
		return replicas == 3 && rb.Spec.Replicas == 3 && equality.Semantic.DeepEqual(rb.Spec.ReplicaRequirements, requirements), saw, nil
	})
	framework.Eventually(t, time.Minute, "template status aggregated natively", func(ctx context.Context) (bool, string, error) {
		got := &appsv1.StatefulSet{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, got); err != nil {
			return false, "", err
		}
		return got.Status.Replicas == 3 && got.Status.ReadyReplicas == 3, fmt.Sprintf("template status %+v", got.Status), nil
	})
	unchanged := scrape(t)
	for _, op := range karmadaOperations {
		for _, kind := range []string{"StatefulSet", "Deployment"} {
			if d := unchanged.Sum(string(op), kind) - frozen.Sum(string(op), kind); d != 0 {
				t.Errorf("without the configuration Karmada still sent %.0f %s requests for %s to the webhook", d, op, kind)
			}
		}
	}

	// Applying it again routes Karmada through the webhook again.
	if _, err := env.ApplyInterpreterConfig(ctx); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "after re-applying, the stateshift block is reflected again", func(ctx context.Context) (bool, string, error) {
		poke++
		// Retain dropped the hand-set restored-from with the template
		// change above: set it again with each poke.
		if err := annotateMember(ctx, framework.Member1, statefulSetGVK, ns, "db", map[string]string{
			"e2e.stateshift.io/poke": fmt.Sprint(poke), restore.AnnotationRestoredFrom: checkpoint,
		}); err != nil {
			return false, "", err
		}
		rb, err := env.Binding(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		item := memberItem(rb, framework.Member1)
		if item == nil {
			return false, "no member1 item", nil
		}
		status, err := decodeRaw(item.Status)
		if err != nil {
			return false, "", err
		}
		ok, saw := stateshiftBlock(checkpoint)(status)
		return ok, saw, nil
	})
	if d := scrape(t).Sum(string(configv1alpha1.InterpreterOperationInterpretStatus), "StatefulSet") - unchanged.Sum(string(configv1alpha1.InterpreterOperationInterpretStatus), "StatefulSet"); d <= 0 {
		t.Errorf("after re-applying the configuration the webhook counted no InterpretStatus for StatefulSets")
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// failures counts the webhook's unsuccessful answers and rejections.
func failures(c framework.InterpreterCounters) float64 {
	var n float64
	for k, v := range c {
		if k.Result != "success" {
			n += v
		}
	}
	return n
}
