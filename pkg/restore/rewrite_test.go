package restore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type rewriteCase struct {
	name string
	in   func(t testing.TB) *unstructured.Unstructured
	plan Plan
	want func(t testing.TB) *unstructured.Unstructured // nil: error expected
	err  string
}

// appRestored is statefulSet() rewritten by a plan restoring its app
// container from db-0-ckpt-1.
func appRestored(s *appsv1.StatefulSet) {
	s.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
	s.Annotations[AnnotationOriginalImages] = `{"app":"` + appImage + `"}`
	s.Spec.Template.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
	s.Spec.Template.Annotations[AnnotationOriginalImages] = `{"app":"` + appImage + `"}`
	s.Spec.Template.Annotations[AnnotationRestoreImages] = appRestoreImages
}

// appRestoreImages is the restore-images annotation of a plan restoring
// the app container from ckptApp: the template's containers keep their own
// images (the pod-restore webhook sets the checkpoint images on pods).
const appRestoreImages = `{"app":"` + ckptApp + `"}`

func rewriteCases() []rewriteCase {
	appOnly := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}}
	both := Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp, "sidecar": ckptSidecar}}
	return []rewriteCase{
		{
			name: "statefulset one container of two",
			in:   func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: appOnly,
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				return toU(t, s)
			},
		},
		{
			// A receiver (a cluster that already runs db-0 and gets db-1):
			// the partition keeps db-0 off the restored template, a
			// maxUnavailable the user set survives.
			name: "statefulset restored into a cluster that keeps one pod",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: &intstr.IntOrString{IntVal: 2}}}
				return toU(t, s)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, KeepPods: 1},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: &intstr.IntOrString{IntVal: 2}, Partition: ptr(int32(1))}}
				return toU(t, s)
			},
		},
		{
			name: "deployment without annotations, both containers",
			in:   func(t testing.TB) *unstructured.Unstructured { return toU(t, deployment()) },
			plan: both,
			want: func(t testing.TB) *unstructured.Unstructured {
				d := deployment()
				orig := `{"app":"` + appImage + `","sidecar":"` + sidecarImage + `"}`
				d.Annotations = map[string]string{AnnotationRestoredFrom: "db-0-ckpt-1", AnnotationOriginalImages: orig}
				d.Spec.Template.Annotations = map[string]string{AnnotationRestoredFrom: "db-0-ckpt-1", AnnotationOriginalImages: orig,
					AnnotationRestoreImages: `{"app":"` + ckptApp + `","sidecar":"` + ckptSidecar + `"}`}
				return toU(t, d)
			},
		},
		{
			name: "template without metadata, per-pod images",
			in: func(t testing.TB) *unstructured.Unstructured {
				u := toU(t, statefulSet())
				unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata")
				return u
			},
			plan: Plan{Checkpoint: "db-ckpt", Containers: map[string]string{"app": ckptApp},
				Pods: map[string]map[string]string{"db-0": {"app": ckptApp0}, "db-1": {"app": ckptApp}}},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				orig := `{"app":"` + appImage + `"}`
				s.Annotations[AnnotationRestoredFrom] = "db-ckpt"
				s.Annotations[AnnotationOriginalImages] = orig
				u := toU(t, s)
				unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata")
				pods := `{"db-0":{"app":"` + ckptApp0 + `"},"db-1":{"app":"` + ckptApp + `"}}`
				_ = unstructured.SetNestedStringMap(u.Object, map[string]string{
					AnnotationRestoredFrom: "db-ckpt", AnnotationOriginalImages: orig, AnnotationPodImages: pods, AnnotationRestoreImages: appRestoreImages,
				}, "spec", "template", "metadata", "annotations")
				return u
			},
		},
		{
			name: "stale pod images dropped, originals kept",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				s.Annotations[AnnotationOriginalImages] = `{"app":"` + appImage + `"}`
				s.Spec.Template.Annotations[AnnotationPodImages] = `{"db-0":{"app":"` + ckptApp0 + `"}}`
				s.Spec.Template.Spec.Containers[0].Image = ckptApp0
				return toU(t, s)
			},
			plan: appOnly,
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				orig := `{"app":"` + appImage + `"}`
				s.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
				s.Annotations[AnnotationOriginalImages] = orig
				s.Spec.Template.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
				s.Spec.Template.Annotations[AnnotationOriginalImages] = orig
				s.Spec.Template.Annotations[AnnotationRestoreImages] = appRestoreImages
				return toU(t, s)
			},
		},
		{
			name: "source images and template generation carried to the template, stale pod images dropped",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				s.Spec.Template.Annotations[AnnotationPodImages] = `{"db-0":{"app":"` + ckptApp0 + `"}}`
				return toU(t, s)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, SourceImages: map[string]string{"app": "registry.example.com/team/app:1.3"}, TemplateGeneration: 7},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				orig := `{"app":"` + appImage + `"}`
				s.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
				s.Annotations[AnnotationOriginalImages] = orig
				s.Spec.Template.Annotations[AnnotationRestoredFrom] = "db-0-ckpt-1"
				s.Spec.Template.Annotations[AnnotationOriginalImages] = orig
				s.Spec.Template.Annotations[AnnotationSourceImages] = `{"app":"registry.example.com/team/app:1.3"}`
				s.Spec.Template.Annotations[AnnotationTemplateGeneration] = "7"
				s.Spec.Template.Annotations[AnnotationRestoreImages] = appRestoreImages
				return toU(t, s)
			},
		},
		{
			// The policy's pull Secret goes to a template without
			// imagePullSecrets as a new list, recorded as the plan's own.
			name: "pull secret added to a template without imagePullSecrets",
			in:   func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.Template.Annotations[AnnotationPullSecret] = "ckpt-pull"
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ckpt-pull"}}
				return toU(t, s)
			},
		},
		{
			// The workload's own entries stay, in their order; the plan's
			// is appended.
			name: "pull secret appended to the workload's own",
			in: func(t testing.TB) *unstructured.Unstructured {
				d := deployment()
				d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "team-images"}, {Name: "base-images"}}
				return toU(t, d)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"},
			want: func(t testing.TB) *unstructured.Unstructured {
				d := deployment()
				orig := `{"app":"` + appImage + `"}`
				d.Annotations = map[string]string{AnnotationRestoredFrom: "db-0-ckpt-1", AnnotationOriginalImages: orig}
				d.Spec.Template.Annotations = map[string]string{AnnotationRestoredFrom: "db-0-ckpt-1", AnnotationOriginalImages: orig, AnnotationPullSecret: "ckpt-pull",
					AnnotationRestoreImages: appRestoreImages}
				d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "team-images"}, {Name: "base-images"}, {Name: "ckpt-pull"}}
				return toU(t, d)
			},
		},
		{
			// The workload lists the Secret itself: nothing added, and not
			// recorded as the plan's (Retain must never drop it).
			name: "pull secret the workload already lists",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ckpt-pull"}}
				return toU(t, s)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "ckpt-pull"}}
				return toU(t, s)
			},
		},
		{
			// An earlier rewrite added another Secret: its entry and record
			// go, the workload's own entries stay.
			name: "stale pull secret of an earlier rewrite replaced",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.Template.Annotations[AnnotationPullSecret] = "old-pull"
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "team-images"}, {Name: "old-pull"}}
				return toU(t, s)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.Template.Annotations[AnnotationPullSecret] = "ckpt-pull"
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "team-images"}, {Name: "ckpt-pull"}}
				return toU(t, s)
			},
		},
		{
			name: "stale pull secret of an earlier rewrite removed by a plan without one",
			in: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				s.Spec.Template.Annotations[AnnotationPullSecret] = "old-pull"
				s.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "old-pull"}}
				return toU(t, s)
			},
			plan: Plan{Checkpoint: "db-0-ckpt-1", Containers: map[string]string{"app": ckptApp}},
			want: func(t testing.TB) *unstructured.Unstructured {
				s := statefulSet()
				appRestored(s)
				return toU(t, s)
			},
		},
		{name: "invalid pull secret name", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}, PullSecret: "Not_A_Name"}, err: "pull Secret name"},
		{name: "imagePullSecrets not a list", in: func(t testing.TB) *unstructured.Unstructured {
			u := toU(t, statefulSet())
			_ = unstructured.SetNestedField(u.Object, "ckpt-pull", "spec", "template", "spec", "imagePullSecrets")
			return u
		}, plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}, PullSecret: "ckpt-pull"}, err: "imagePullSecrets is a string"},
		{name: "source image of an unplanned container", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}, SourceImages: map[string]string{"sidecar": "x:1"}}, err: "not a planned container"},
		{name: "unknown container", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"cache": ckptApp}}, err: `container "cache", the workload has app, sidecar`},
		{name: "tag instead of digest", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": "registry.example.com/ckpt/app:v1"}}, err: "not by digest"},
		{name: "tag and digest", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": "registry.example.com/ckpt/app:v1@sha256:1111111111111111111111111111111111111111111111111111111111111111"}}, err: "carries a tag"},
		{name: "malformed digest", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": "registry.example.com/ckpt/app@sha256:12"}}, err: "image"},
		{name: "unsupported kind", in: func(t testing.TB) *unstructured.Unstructured {
			return toU(t, &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, Spec: podSpec()})
		}, plan: appOnly, err: "not supported"},
		{name: "unsupported version", in: func(t testing.TB) *unstructured.Unstructured {
			u := toU(t, statefulSet())
			u.SetAPIVersion("apps/v1beta2")
			return u
		}, plan: appOnly, err: "not supported"},
		{name: "empty checkpoint", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Containers: map[string]string{"app": ckptApp}}, err: "checkpoint name is empty"},
		{name: "checkpoint too long for a label", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: strings.Repeat("a", 64), Containers: map[string]string{"app": ckptApp}}, err: "label value"},
		{name: "no containers", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c"}, err: "no containers"},
		{name: "pod image for a container outside the plan", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}, Pods: map[string]map[string]string{"db-0": {"sidecar": ckptSidecar}}},
			err:  "not in the plan's containers"},
		{name: "pod image by tag", in: func(t testing.TB) *unstructured.Unstructured { return toU(t, statefulSet()) },
			plan: Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}, Pods: map[string]map[string]string{"db-0": {"app": "x/app:1"}}},
			err:  "not by digest"},
		{name: "malformed original images", in: func(t testing.TB) *unstructured.Unstructured {
			s := statefulSet()
			s.Annotations[AnnotationOriginalImages] = "app=x"
			return toU(t, s)
		}, plan: appOnly, err: "not a JSON object"},
	}
}

func TestRewrite(t *testing.T) {
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(t)
			before := in.DeepCopy()
			got, err := Rewrite(in, tc.plan)
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("Rewrite changed its input")
			}
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			assertEqual(t, got, tc.want(t))

			again, err := Rewrite(got, tc.plan)
			if err != nil {
				t.Fatalf("second Rewrite: %v", err)
			}
			assertEqual(t, again, got)
		})
	}
}

// TestRewriteKeepsFirstOriginals: a second restore (another checkpoint)
// still records the images the user wrote, not the first checkpoint's.
func TestRewriteKeepsFirstOriginals(t *testing.T) {
	first, err := Rewrite(toU(t, statefulSet()), Plan{Checkpoint: "a", Containers: map[string]string{"app": ckptApp}})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Rewrite(first, Plan{Checkpoint: "b", Containers: map[string]string{"app": ckptApp0, "sidecar": ckptSidecar}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := OriginalImages(second.GetAnnotations())
	want := map[string]string{"app": appImage, "sidecar": sidecarImage}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("original images = %v, want %v", got, want)
	}
	if second.GetAnnotations()[AnnotationRestoredFrom] != "b" {
		t.Fatalf("restored-from = %q", second.GetAnnotations()[AnnotationRestoredFrom])
	}
}

// TestPatchesEqualRewrite: the JSON-patch form, applied with an RFC 6902
// implementation, gives exactly Rewrite's result.
func TestPatchesEqualRewrite(t *testing.T) {
	for _, tc := range rewriteCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(t)
			ops, err := Patches(in, tc.plan)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, applyOps(t, in, ops), tc.want(t))
		})
	}
}

func applyOps(t testing.TB, in *unstructured.Unstructured, ops []Operation) *unstructured.Unstructured {
	t.Helper()
	raw, _ := json.Marshal(ops)
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatalf("decode patch %s: %v", raw, err)
	}
	doc, _ := in.MarshalJSON()
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch %s: %v", raw, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(out); err != nil {
		t.Fatal(err)
	}
	return u
}

// assertEqual compares through JSON, as the API server would see them.
func assertEqual(t testing.TB, got, want *unstructured.Unstructured) {
	t.Helper()
	g, _ := got.MarshalJSON()
	w, _ := want.MarshalJSON()
	var gv, wv interface{}
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	if !reflect.DeepEqual(gv, wv) {
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}
