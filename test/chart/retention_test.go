package chart

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/karmada-io/karmada/pkg/resourceinterpreter/customized/declarative/luavm"

	"github.com/stateshift/stateshift/pkg/podrestore"
)

// TestPodRestoreConditionsSurviveKarmadaDelivery: Karmada delivers the
// members' pod-restore webhook configuration, and the webhook's process
// writes the completed restores into two of its conditions. The chart's
// ResourceInterpreterCustomization, run in Karmada's own Lua VM (what
// karmada-controller-manager runs before it updates a member object),
// keeps those two expressions as the member shows them and everything
// else as delivered; any other MutatingWebhookConfiguration is delivered
// as it is.
func TestPodRestoreConditionsSurviveKarmadaDelivery(t *testing.T) {
	r := render(t)
	custom := r.findKarmada(t, "ResourceInterpreterCustomization", "stateshift-pod-restore-conditions")
	script, _, _ := unstructured.NestedString(custom.Object, "spec", "customizations", "retention", "luaScript")
	target, _, _ := unstructured.NestedStringMap(custom.Object, "spec", "target")
	if script == "" || target["kind"] != "MutatingWebhookConfiguration" || target["apiVersion"] != "admissionregistration.k8s.io/v1" {
		t.Fatalf("customization target %v, script %q", target, script)
	}
	var desired *unstructured.Unstructured
	for _, u := range r.allKarmada() {
		if u.GetKind() == "MutatingWebhookConfiguration" && u.GetName() == "stateshift-pod-restore" {
			desired = u
		}
	}
	if desired == nil {
		t.Fatal("the chart renders no MutatingWebhookConfiguration stateshift-pod-restore")
	}

	keys := []string{"shop/db-0-ckpt", "bank/ledger-0-ckpt"}
	observed := desired.DeepCopy()
	webhooks, _, _ := unstructured.NestedSlice(observed.Object, "webhooks")
	for _, w := range webhooks {
		wm := w.(map[string]any)
		wm["timeoutSeconds"] = int64(30) // a member user's edit: Karmada puts it back
		for _, c := range wm["matchConditions"].([]any) {
			cm := c.(map[string]any)
			switch cm["name"] {
			case podrestore.PendingCondition:
				cm["expression"] = podrestore.PendingExpression(keys)
			case podrestore.CompletedCondition:
				cm["expression"] = podrestore.CompletedExpression(keys)
			case "restored-template":
				cm["expression"] = "true" // not one of the two: delivered again
			}
		}
	}
	_ = unstructured.SetNestedSlice(observed.Object, webhooks, "webhooks")

	vm := luavm.New(false, 1)
	got, err := vm.Retain(desired, observed, script)
	if err != nil {
		t.Fatalf("Karmada's Lua VM: %v", err)
	}
	gotHooks, _, _ := unstructured.NestedSlice(got.Object, "webhooks")
	wantHooks, _, _ := unstructured.NestedSlice(desired.Object, "webhooks")
	if len(gotHooks) != len(wantHooks) || len(gotHooks) != 2 {
		t.Fatalf("retained %d webhooks, delivered %d", len(gotHooks), len(wantHooks))
	}
	seen := 0
	for i, w := range gotHooks {
		wm := w.(map[string]any)
		if timeout := wm["timeoutSeconds"]; toString(timeout) != toString(wantHooks[i].(map[string]any)["timeoutSeconds"]) {
			t.Errorf("%s timeoutSeconds %v: a member's edit outside the two conditions was kept", wm["name"], timeout)
		}
		for _, c := range wm["matchConditions"].([]any) {
			cm := c.(map[string]any)
			expr, _ := cm["expression"].(string)
			switch cm["name"] {
			case podrestore.PendingCondition:
				seen++
				if expr != podrestore.PendingExpression(keys) {
					t.Errorf("%s: %s not kept: %s", wm["name"], cm["name"], expr)
				}
			case podrestore.CompletedCondition:
				seen++
				if expr != podrestore.CompletedExpression(keys) {
					t.Errorf("%s: %s not kept: %s", wm["name"], cm["name"], expr)
				}
			default:
				if expr == "true" {
					t.Errorf("%s: %s took the member's value", wm["name"], cm["name"])
				}
			}
		}
		// Lists must stay lists (Lua turns empty tables into objects).
		if rules, ok := wm["rules"].([]any); !ok || len(rules) == 0 {
			t.Errorf("%s rules %v", wm["name"], wm["rules"])
		}
	}
	if seen != 2 {
		t.Fatalf("%d of the two conditions found after Retain", seen)
	}

	other := desired.DeepCopy()
	other.SetName("someone-elses-webhook")
	otherObserved := observed.DeepCopy()
	otherObserved.SetName("someone-elses-webhook")
	kept, err := vm.Retain(other, otherObserved, script)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(toString(kept.Object), "shop/db-0-ckpt") {
		t.Fatal("another MutatingWebhookConfiguration kept the member's conditions")
	}
}
