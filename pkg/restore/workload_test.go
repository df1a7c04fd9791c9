package restore

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestMalformedWorkload: a manifest whose fields have the wrong shape is
// refused with an error naming the object and the field, by every entry
// point and for desired and observed alike, never skipped or read as
// empty, never a panic.
func TestMalformedWorkload(t *testing.T) {
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}}
	cases := []struct {
		name  string
		value interface{}
		path  []string
		want  string
	}{
		{"containers not a list", "app", []string{"spec", "template", "spec", "containers"},
			"spec.template.spec.containers is a string, not a list"},
		{"container not an object", []interface{}{"app"}, []string{"spec", "template", "spec", "containers"},
			"spec.template.spec.containers is a string, not an object"},
		{"image not a string", []interface{}{map[string]interface{}{"name": "app", "image": int64(3)}}, []string{"spec", "template", "spec", "containers"},
			"spec.template.spec.containers.image is a number, not a string"},
		{"container name not a string", []interface{}{map[string]interface{}{"name": true, "image": appImage}}, []string{"spec", "template", "spec", "containers"},
			"spec.template.spec.containers.name is a bool, not a string"},
		{"pod template annotation not a string", map[string]interface{}{"a": int64(1)}, []string{"spec", "template", "metadata", "annotations"},
			"spec.template.metadata.annotations is a number, not a string"},
		{"pod template not an object", "x", []string{"spec", "template"},
			"spec.template is a string, not an object"},
		{"workload annotations a list", []interface{}{"a"}, []string{"metadata", "annotations"},
			"metadata.annotations is a list, not an object"},
		{"imagePullSecrets entry not an object", []interface{}{"ckpt-pull"}, []string{"spec", "template", "spec", "imagePullSecrets"},
			"spec.template.spec.imagePullSecrets is a string, not an object"},
		{"partition not an integer", "1", []string{"spec", "updateStrategy", "rollingUpdate", "partition"},
			"spec.updateStrategy.rollingUpdate.partition is a string, not an integer"},
		{"readyReplicas not an integer", "3", []string{"status", "readyReplicas"},
			"status.readyReplicas is a string, not an integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := toU(t, statefulSet())
			bad := good.DeepCopy()
			if err := unstructured.SetNestedField(bad.Object, tc.value, tc.path...); err != nil {
				t.Fatal(err)
			}
			restored, err := Rewrite(good, plan)
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]func() error{
				"Rewrite": func() error { _, err := Rewrite(bad, plan); return err },
				"Patches": func() error { _, err := Patches(bad, plan); return err },
				"Retain desired": func() error {
					_, err := Retain(bad, restored)
					return err
				},
				"Retain observed": func() error { _, err := Retain(good, bad); return err },
				"KeepRestored":    func() error { _, err := KeepRestored(good, bad); return err },
			}
			for call, run := range calls {
				err := run()
				if err == nil || !strings.Contains(err.Error(), "StatefulSet shop/db") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error = %v, want one naming StatefulSet shop/db and %q", call, err, tc.want)
				}
			}
		})
	}
}

// TestRetainOtherKind: Retain refuses an observed object of another kind
// (the interpreter checks this before; the package does not rely on it).
func TestRetainOtherKind(t *testing.T) {
	_, err := Retain(toU(t, statefulSet()), toU(t, deployment()))
	if err == nil || !strings.Contains(err.Error(), "the observed object is a Deployment (apps/v1)") {
		t.Fatalf("error = %v", err)
	}
	if keep, err := KeepRestored(toU(t, statefulSet()), toU(t, deployment())); keep || err != nil {
		t.Fatalf("KeepRestored of two kinds = %v, %v", keep, err)
	}
}

// fromJSON is a manifest as Karmada carries it (parsed JSON: no converter
// defaults such as resources: {} or status: {}).
func fromJSON(t testing.TB, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(doc)); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	return u
}

// roundTripManifests are a Deployment and a StatefulSet as Karmada renders
// them: no converter defaults, a field these API types do not know
// (futureField: a newer API server's) and a quantity written "0.5".
// restoredKind is the same workload after Rewrite, memberKind as the member
// shows it then (defaults added, the quantity canonical, ready).
const (
	roundTripTemplate = `{"apiVersion":"apps/v1","kind":"%s","metadata":{"name":"db","namespace":"shop","annotations":{"team":"payments"}},
"spec":{"replicas":2,%s"selector":{"matchLabels":{"app":"db"}},"template":{"metadata":{"labels":{"app":"db"}%s},
"spec":{"containers":[{"name":"app","image":"registry.example.com/team/app:1.4","futureField":"x",%s"resources":{"requests":{"cpu":"%s"}}},
{"name":"sidecar","image":"registry.example.com/team/sidecar:2.0"}]%s}}}%s}`
	roundTripRestoredAnnotations = `,"annotations":{"stateshift.io/restored-from":"db-0-ckpt-1","stateshift.io/original-images":"{\"app\":\"registry.example.com/team/app:1.4\"}","stateshift.io/pull-secret":"ckpt-pull","stateshift.io/restore-images":"{\"app\":\"registry.example.com/ckpt/app@sha256:1111111111111111111111111111111111111111111111111111111111111111\"}"}`
	roundTripRestoredContainer   = ``
	roundTripRestoredPullSecrets = `,"imagePullSecrets":[{"name":"ckpt-pull"}]`
)

func roundTripManifest(t testing.TB, kind string, restored, member bool) *unstructured.Unstructured {
	t.Helper()
	serviceName, cpu, templateAnnotations, container, pullSecrets, status := "", "0.5", "", "", "", ""
	if kind == "StatefulSet" {
		serviceName = `"serviceName":"db",`
	}
	if restored {
		templateAnnotations, container, pullSecrets = roundTripRestoredAnnotations, roundTripRestoredContainer, roundTripRestoredPullSecrets
	}
	if member {
		cpu, status = "500m", `,"status":{"replicas":2,"readyReplicas":2}`
	}
	doc := fmt.Sprintf(roundTripTemplate, kind, serviceName, templateAnnotations, container, cpu, pullSecrets, status)
	u := fromJSON(t, doc)
	if restored {
		a := u.GetAnnotations()
		a[AnnotationRestoredFrom] = "db-0-ckpt-1"
		a[AnnotationOriginalImages] = `{"app":"` + appImage + `"}`
		u.SetAnnotations(a)
	}
	return u
}

// TestRewriteRetainRoundTrip: Rewrite then Retain (the plan withdrawn,
// the member restored and ready) of a Deployment and a StatefulSet give
// back exactly the expected objects: the restore's edits and nothing
// else, no converter defaults, the unknown field kept, and the member's
// canonical quantity ("500m" for "0.5") not taken for a user's change.
func TestRewriteRetainRoundTrip(t *testing.T) {
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		t.Run(kind, func(t *testing.T) {
			template := roundTripManifest(t, kind, false, false)
			restored, err := Rewrite(template, plan)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, restored, roundTripManifest(t, kind, true, false))
			ops, err := Patches(template, plan)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, applyOps(t, template, ops), restored)

			observed := roundTripManifest(t, kind, true, true)
			got, err := Retain(template, observed)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, got, completed(restored, plan.Checkpoint))
		})
	}
}
