package restore

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const agentCheckpoint = "db-0-ckpt-9"

// member turns a manifest into what the member API server shows: defaults
// added, a status, and the agent's annotations.
func member(t testing.TB, manifest *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	m := manifest.DeepCopy()
	containers, _, _ := unstructured.NestedSlice(m.Object, "spec", "template", "spec", "containers")
	for i := range containers {
		c := containers[i].(map[string]interface{})
		c["terminationMessagePath"] = "/dev/termination-log"
		if _, ok := c["imagePullPolicy"]; !ok {
			c["imagePullPolicy"] = "IfNotPresent"
		}
	}
	_ = unstructured.SetNestedSlice(m.Object, containers, "spec", "template", "spec", "containers")
	_ = unstructured.SetNestedField(m.Object, "ClusterFirst", "spec", "template", "spec", "dnsPolicy")
	_ = unstructured.SetNestedField(m.Object, int64(3), "status", "readyReplicas")
	a := m.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationLatestCheckpoint] = agentCheckpoint
	a["deployment.kubernetes.io/revision"] = "4"
	m.SetAnnotations(a)
	m.SetResourceVersion("812")
	return m
}

func withAgentAnnotation(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationLatestCheckpoint] = agentCheckpoint
	u.SetAnnotations(a)
	return u
}

// karmadaRetained mimics objectwatcher.retainClusterFields, which copies
// the member's top-level annotations into desired before calling Retain.
func karmadaRetained(desired, observed *unstructured.Unstructured) *unstructured.Unstructured {
	d := desired.DeepCopy()
	a := d.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range observed.GetAnnotations() {
		if _, ok := a[k]; !ok {
			a[k] = v
		}
	}
	d.SetAnnotations(a)
	return d
}

func TestRetain(t *testing.T) {
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}}
	for _, kind := range []string{"StatefulSet", "Deployment"} {
		template := toU(t, statefulSet())
		if kind == "Deployment" {
			template = toU(t, deployment())
		}
		restored, err := Rewrite(template, plan)
		if err != nil {
			t.Fatal(err)
		}
		observedRestored := member(t, restored)
		observedPlain := member(t, template)

		changedImage := template.DeepCopy()
		setContainer(changedImage, 0, "image", "registry.example.com/team/app:1.5")
		changedEnv := template.DeepCopy()
		setContainer(changedEnv, 0, "env", []interface{}{map[string]interface{}{"name": "MODE", "value": "replica"}})
		brokenRecord := observedRestored.DeepCopy()
		a := brokenRecord.GetAnnotations()
		a[AnnotationOriginalImages] = "{"
		brokenRecord.SetAnnotations(a)

		completedObserved := completed(observedRestored, plan.Checkpoint)

		cases := []struct {
			name              string
			desired, observed *unstructured.Unstructured
			want              *unstructured.Unstructured
		}{
			{"plan withdrawn, nothing else changed: stay restored, restore completed", template, observedRestored,
				completed(withAgentAnnotation(restored), plan.Checkpoint)},
			{"plan withdrawn, after Karmada's annotation retention", karmadaRetained(template, observedRestored), observedRestored,
				completed(karmadaRetained(restored, observedRestored), plan.Checkpoint)},
			{"restore completed before: stays", karmadaRetained(template, completedObserved), completedObserved,
				completed(karmadaRetained(restored, completedObserved), plan.Checkpoint)},
			{"new plan armed on a cluster that completed a restore: the record goes", karmadaRetained(restored, completedObserved), completedObserved,
				withoutCompleted(karmadaRetained(restored, completedObserved))},
			{"user changed the image after a completed restore: record goes", karmadaRetained(changedImage, completedObserved), completedObserved,
				withoutRestoreKeys(karmadaRetained(changedImage, completedObserved))},
			{"user changed the image: user wins", changedImage, observedRestored, withAgentAnnotation(changedImage)},
			{"user changed the image, after Karmada's annotation retention: restore keys dropped",
				karmadaRetained(changedImage, observedRestored), observedRestored,
				withoutRestoreKeys(karmadaRetained(changedImage, observedRestored))},
			{"user changed another field: user wins", changedEnv, observedRestored, withAgentAnnotation(changedEnv)},
			{"plan armed: desired is the restore", restored, observedRestored, withAgentAnnotation(restored)},
			{"not restored: only agent annotations kept", template, observedPlain, withAgentAnnotation(template)},
			{"unreadable record: desired wins", template, brokenRecord, withAgentAnnotation(template)},
		}
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				before := tc.desired.DeepCopy()
				got, err := Retain(tc.desired, tc.observed)
				if err != nil {
					t.Fatal(err)
				}
				assertEqual(t, tc.desired, before)
				assertEqual(t, got, tc.want)
			})
		}
	}
}

func completed(u *unstructured.Unstructured, checkpoint string) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	a[AnnotationRestoreCompleted] = checkpoint
	u.SetAnnotations(a)
	return u
}

func withoutCompleted(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	delete(a, AnnotationRestoreCompleted)
	u.SetAnnotations(a)
	return u
}

func withoutRestoreKeys(u *unstructured.Unstructured) *unstructured.Unstructured {
	u = u.DeepCopy()
	a := u.GetAnnotations()
	for _, k := range restoreKeys {
		delete(a, k)
	}
	u.SetAnnotations(a)
	return u
}

func setContainer(u *unstructured.Unstructured, i int, field string, value interface{}) {
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	containers[i].(map[string]interface{})[field] = value
	_ = unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
}

func TestSubset(t *testing.T) {
	cases := []struct {
		a, b interface{}
		want bool
	}{
		{map[string]interface{}{"x": int64(1)}, map[string]interface{}{"x": float64(1), "y": "d"}, true},
		{map[string]interface{}{"x": "a"}, map[string]interface{}{"x": "b"}, false},
		{map[string]interface{}{"x": "a"}, map[string]interface{}{}, false},
		{map[string]interface{}{"x": map[string]interface{}{}}, map[string]interface{}{}, true},
		{[]interface{}{"a"}, []interface{}{"a", "b"}, false},
		{[]interface{}{map[string]interface{}{"n": "a"}}, []interface{}{map[string]interface{}{"n": "a", "p": "TCP"}}, true},
		{string(corev1.PullAlways), string(corev1.PullAlways), true},
	}
	for i, tc := range cases {
		if got := subset(tc.a, tc.b); got != tc.want {
			t.Errorf("case %d: subset(%v, %v) = %v", i, tc.a, tc.b, got)
		}
	}
}

// TestRetainKeepsPlanPullSecret: the plan's pull Secret is part of the
// restored template. When the plan is withdrawn and the user changed
// nothing, Retain keeps it (with the workload's own entries, in order) so
// the restored pods' template does not change (no roll, no cold start);
// when the user changed the template, desired wins and the entry goes.
func TestRetainKeepsPlanPullSecret(t *testing.T) {
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"}
	for _, own := range [][]corev1.LocalObjectReference{nil, {{Name: "team-images"}}} {
		s := statefulSet()
		s.Spec.Template.Spec.ImagePullSecrets = own
		template := toU(t, s)
		restored, err := Rewrite(template, plan)
		if err != nil {
			t.Fatal(err)
		}
		observed := member(t, restored)

		got, err := Retain(karmadaRetained(template, observed), observed)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, got, completed(karmadaRetained(restored, observed), plan.Checkpoint))
		var names []string
		secrets, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "imagePullSecrets")
		for _, s := range secrets {
			name, _, _ := unstructured.NestedString(s.(map[string]interface{}), "name")
			names = append(names, name)
		}
		if want := len(own) + 1; len(names) != want || names[want-1] != "ckpt-pull" {
			t.Fatalf("own %v: imagePullSecrets = %v, want the workload's own then ckpt-pull", own, names)
		}

		changed := template.DeepCopy()
		setContainer(changed, 0, "image", "registry.example.com/team/app:1.5")
		got, err = Retain(changed, observed)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, got, withAgentAnnotation(changed))
	}
}

// TestRetainPullSecretTheWorkloadLists: a Secret the workload lists
// itself is never the plan's: a user who swaps it for another in the
// template (after the restore) gets their template, not the restored one.
func TestRetainPullSecretTheWorkloadLists(t *testing.T) {
	plan := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"}
	s := statefulSet()
	s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ckpt-pull"}}
	restored, err := Rewrite(toU(t, s), plan)
	if err != nil {
		t.Fatal(err)
	}
	observed := member(t, restored)
	s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "other-images"}}
	desired := toU(t, s)
	got, err := Retain(desired, observed)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, got, withAgentAnnotation(desired))
}
