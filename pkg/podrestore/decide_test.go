package podrestore

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/restore"
)

const (
	original = "registry.example.com/team/db:1.4"
	sidecar  = "registry.example.com/team/exporter:0.9"
	ckpt0    = "registry.example.com/ckpt/db@sha256:0000000000000000000000000000000000000000000000000000000000000000"
	ckpt1    = "registry.example.com/ckpt/db@sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

// restoredPod is a pod as the StatefulSet controller creates it from a
// template Rewrite changed for two pods: the template keeps its image and
// names db-0's checkpoint as every pod's default.
func restoredPod(name string, annotations map[string]string) *corev1.Pod {
	a := map[string]string{
		restore.AnnotationRestoredFrom:   "db-0-ckpt",
		restore.AnnotationOriginalImages: `{"app":"` + original + `"}`,
		restore.AnnotationRestoreImages:  `{"app":"` + ckpt0 + `"}`,
		restore.AnnotationPodImages:      `{"db-0":{"app":"` + ckpt0 + `"},"db-1":{"app":"` + ckpt1 + `"}}`,
		"team":                           "payments",
	}
	for k, v := range annotations {
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: a},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: original, ImagePullPolicy: corev1.PullAlways},
			{Name: "metrics", Image: sidecar},
		}},
	}
}

// legacyPod is a pod of a template an older version rewrote: the template
// ran the checkpoint image and had no restore-images.
func legacyPod(name string, annotations map[string]string) *corev1.Pod {
	p := restoredPod(name, annotations)
	delete(p.Annotations, restore.AnnotationRestoreImages)
	p.Spec.Containers[0].Image = ckpt0
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	return p
}

func TestDecide(t *testing.T) {
	sts := &Owner{Kind: "StatefulSet", Name: "db", Annotations: map[string]string{}}
	done := &Owner{Kind: "StatefulSet", Name: "db", Annotations: map[string]string{restore.AnnotationRestoreCompleted: "db-0-ckpt"}}
	doneOther := &Owner{Kind: "StatefulSet", Name: "db", Annotations: map[string]string{restore.AnnotationRestoreCompleted: "db-0-older"}}
	karmada := func(gen string) *Owner {
		return &Owner{Kind: "StatefulSet", Name: "db", Annotations: map[string]string{restore.AnnotationKarmadaGeneration: gen}}
	}
	armed4 := map[string]string{restore.AnnotationTemplateGeneration: "4"}
	cases := []struct {
		name    string
		pod     *corev1.Pod
		owner   *Owner
		outcome Outcome
		app     string // image of container app after Apply
		err     string
	}{
		{"no restore planned", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, sts, Unchanged, "", ""},
		{"db-0 restores its own", restoredPod("db-0", nil), sts, PerPod, ckpt0, ""},
		{"db-1 restores its own, not db-0's", restoredPod("db-1", nil), sts, PerPod, ckpt1, ""},
		{"db-2 has no checkpoint: cold", restoredPod("db-2", nil), sts, Cold, original, ""},
		{"no owner: per-pod still applies", restoredPod("db-1", nil), nil, PerPod, ckpt1, ""},
		{"restore completed: cold", restoredPod("db-1", nil), done, Cold, original, ""},
		{"an older restore completed: this one still restores", restoredPod("db-1", nil), doneOther, PerPod, ckpt1, ""},
		{"one checkpoint for all (Deployment)", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: ""}), sts, Shared, ckpt0, ""},
		{"one checkpoint for all, template of an older version: as it is", legacyPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: ""}), sts, Unchanged, ckpt0, ""},
		{"template of an older version, per pod", legacyPod("db-1", nil), sts, PerPod, ckpt1, ""},
		{"template of an older version, completed: cold", legacyPod("db-1", nil), done, Cold, original, ""},
		{"restore-images not JSON", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: "", restore.AnnotationRestoreImages: "{"}), sts, "", "", "restore-images is not a JSON object"},
		{"restore-images with a tag", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: "", restore.AnnotationRestoreImages: `{"app":"registry.example.com/ckpt/db:latest"}`}), sts, "", "", "not by digest"},
		{"restore-images names a container not restored", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: "", restore.AnnotationRestoreImages: `{"metrics":"` + ckpt1 + `"}`}), sts, "", "", `container "metrics" is not a restored container`},
		{"restore-images empty", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: "", restore.AnnotationRestoreImages: `{}`}), sts, "", "", "names no container"},
		{"one checkpoint for all, completed: cold", restoredPod("web-7f9c-abcde", map[string]string{restore.AnnotationPodImages: ""}),
			&Owner{Kind: "Deployment", Name: "web", Annotations: map[string]string{restore.AnnotationRestoreCompleted: "db-0-ckpt"}}, Cold, original, ""},
		{"checkpoint of the same image: restores", restoredPod("db-1", map[string]string{restore.AnnotationSourceImages: `{"app":"` + original + `"}`}), sts, PerPod, ckpt1, ""},
		{"checkpoint of another image (template changed): cold", restoredPod("db-1", map[string]string{restore.AnnotationSourceImages: `{"app":"registry.example.com/team/db:1.3"}`}), sts, Cold, original, ""},
		{"armed for the generation Karmada rendered: restores", restoredPod("db-1", armed4), karmada("4"), PerPod, ckpt1, ""},
		{"armed for an older generation: cold", restoredPod("db-1", armed4), karmada("5"), Cold, original, ""},
		{"workload not from Karmada: no generation check", restoredPod("db-1", armed4), sts, PerPod, ckpt1, ""},
		{"source-images not JSON", restoredPod("db-1", map[string]string{restore.AnnotationSourceImages: "["}), sts, "", "", "source-images is not a JSON object"},
		{"pod-images not JSON", restoredPod("db-1", map[string]string{restore.AnnotationPodImages: "{"}), sts, "", "", "pod-images is not a JSON object"},
		{"pod-images with a tag", restoredPod("db-1", map[string]string{restore.AnnotationPodImages: `{"db-1":{"app":"registry.example.com/ckpt/db:latest"}}`}), sts, "", "", "not by digest"},
		{"pod-images names a container not restored", restoredPod("db-1", map[string]string{restore.AnnotationPodImages: `{"db-1":{"metrics":"` + ckpt1 + `"}}`}), sts, "", "", `container "metrics" is not a restored container`},
		{"original-images missing", restoredPod("db-1", map[string]string{restore.AnnotationOriginalImages: ""}), sts, "", "", "original-images is missing"},
		{"original-images broken", restoredPod("db-1", map[string]string{restore.AnnotationOriginalImages: "["}), sts, "", "", "original-images"},
		{"original-images names a container the pod lacks", restoredPod("db-1", map[string]string{restore.AnnotationOriginalImages: `{"db":"x:1"}`}), sts, "", "", `names container "db"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			d, err := Decide(tc.pod, tc.owner)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tc.outcome || d.Reason == "" {
				t.Fatalf("outcome %q (reason %q), want %q", d.Outcome, d.Reason, tc.outcome)
			}
			got, err := Apply(tc.pod, d)
			if err != nil {
				t.Fatal(err)
			}
			if tc.pod.String() != before.String() {
				t.Fatal("Apply changed its input")
			}
			if tc.app != "" && got.Spec.Containers[0].Image != tc.app {
				t.Fatalf("app image %s, want %s", got.Spec.Containers[0].Image, tc.app)
			}
			if len(got.Spec.Containers) > 1 && got.Spec.Containers[1].Image != sidecar {
				t.Fatalf("the sidecar (not restored) changed: %s", got.Spec.Containers[1].Image)
			}
			a := got.Annotations
			if a["team"] != tc.pod.Annotations["team"] {
				t.Fatal("a user's annotation was lost")
			}
			switch d.Outcome {
			case Cold:
				if a[restore.AnnotationColdStart] != d.Reason || a[restore.AnnotationRestoredFrom] != "" || a[restore.AnnotationPodImages] != "" || a[restore.AnnotationSourceImages] != "" || a[restore.AnnotationTemplateGeneration] != "" {
					t.Fatalf("cold pod annotations %v", a)
				}
			case PerPod, Shared:
				if !strings.Contains(a[restore.AnnotationRestoredImages], tc.app) || a[restore.AnnotationPodImages] != "" || a[restore.AnnotationRestoreImages] != "" || a[restore.AnnotationRestoredFrom] == "" {
					t.Fatalf("%s annotations %v", d.Outcome, a)
				}
				if got.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
					t.Fatalf("restored container pulls %s, want IfNotPresent (pinned by digest)", got.Spec.Containers[0].ImagePullPolicy)
				}
			}
			if d.Outcome == Cold && (a[restore.AnnotationRestoreImages] != "" || got.Spec.Containers[0].ImagePullPolicy != tc.pod.Spec.Containers[0].ImagePullPolicy) {
				t.Fatalf("cold pod: restore-images %q, pull policy %s", a[restore.AnnotationRestoreImages], got.Spec.Containers[0].ImagePullPolicy)
			}
		})
	}
}
