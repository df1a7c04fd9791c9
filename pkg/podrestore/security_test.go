package podrestore

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/agent/builder"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/registry"
)

// pushCheckpoint pushes a small checkpoint image as the agent would, with
// the annotations of the source pod, and returns it by digest.
func pushCheckpoint(t *testing.T, host, repo string, src checkpointimage.Source) string {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "checkpoint.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	body := []byte(`{"id":"x","name":"` + src.Container + `"}`)
	if err := tw.WriteHeader(&tar.Header{Name: "config.dump", Mode: 0o600, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	res, err := builder.NewNative().Build(t.Context(), builder.Request{ArchivePath: archive, Repository: host + "/" + repo, Tag: src.Pod,
		Annotations: checkpointimage.Annotations(src), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return res.Reference
}

// TestSecurityPodRestoreRefusesAnotherNamespacesCheckpoint: a pod that
// names another namespace's checkpoint image (its digest is in Events and
// annotations) is refused by the real API server with a message that says
// why; its own namespace's image, read from a real registry, is admitted.
// An image whose manifest records no namespace, or another container, is
// refused too.
func TestSecurityPodRestoreRefusesAnotherNamespacesCheckpoint(t *testing.T) {
	reg := registry.Start(t)
	env, reader := shippedEnv(t)
	serve(t, env, &Handler{Reader: reader, Images: &RegistryReader{InsecureRegistries: []string{reg.Host}}})
	victim := env.Namespace(t, "payments")
	attacker := env.Namespace(t, "intruder")

	victimImage := pushCheckpoint(t, reg.Host, "ckpt/payments", checkpointimage.Source{Container: "app", Pod: "db-0", Namespace: victim})
	noNamespace := pushCheckpoint(t, reg.Host, "ckpt/anon", checkpointimage.Source{Container: "app", Pod: "db-0"})
	otherContainer := pushCheckpoint(t, reg.Host, "ckpt/other", checkpointimage.Source{Container: "sidecar", Pod: "db-0", Namespace: attacker})

	// A restore the way stateshift arms it: every pod restores the template's image.
	pod := func(ns, name, image string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{
				restore.AnnotationRestoredFrom:   "db-ckpt",
				restore.AnnotationOriginalImages: `{"app":"` + original + `"}`,
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		}
	}
	ctx := context.Background()
	for i, tc := range []struct {
		name, ns, image, says string
	}{
		{"another namespace's image", attacker, victimImage, `was taken from a pod in namespace "payments"; a pod in namespace "intruder" may not restore another namespace's process`},
		{"an image recording no namespace", attacker, noNamespace, "records no pod namespace"},
		{"another container's image", attacker, otherContainer, `holds container "sidecar", it cannot restore container "app"`},
	} {
		err := env.Client.Create(ctx, pod(tc.ns, fmt.Sprintf("attempt-%d", i), tc.image))
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "pods.restore.stateshift.io") {
			t.Errorf("%s: create returned %v, want a refusal saying %q", tc.name, err, tc.says)
		}
	}
	// Per-pod images are checked the same way.
	perPod := pod(attacker, "db-0", original)
	perPod.Annotations[restore.AnnotationPodImages] = `{"db-0":{"app":"` + victimImage + `"}}`
	if err := env.Client.Create(ctx, perPod); err == nil || !strings.Contains(err.Error(), `namespace "payments"`) {
		t.Errorf("per-pod image of another namespace: %v", err)
	}
	// The owner restores its own image.
	own := pod(victim, "db-0", victimImage)
	if err := env.Client.Create(ctx, own); err != nil {
		t.Fatalf("the victim's own restore was refused: %v", err)
	}
	if own.Spec.Containers[0].Image != victimImage {
		t.Errorf("own restore runs %s", own.Spec.Containers[0].Image)
	}
}

// A registry that cannot be read refuses the pod (the API server retries)
// rather than admitting an image whose origin is unknown.
func TestSecurityCheckOriginsUnreadableImageIsNotAdmitted(t *testing.T) {
	denied, err := checkOrigins(context.Background(), fakeImages{}, "shop", map[string]string{"app": ckpt0})
	if denied != nil || err == nil || !strings.Contains(err.Error(), "cannot check where its checkpoint comes from") {
		t.Fatalf("denied %v, err %v", denied, err)
	}
}
