package nodesim

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/stateshift/stateshift/test/registry"
	"github.com/stateshift/stateshift/test/testenv"
)

// TestPullWithPodImagePullSecrets: a node without credentials of its own
// for a registry that wants them pulls with the pod's imagePullSecrets, as
// the kubelet does. A pod without them, or naming a missing Secret, fails
// with ErrImagePull: a restore plan that forgets its pull Secret shows.
func TestPullWithPodImagePullSecrets(t *testing.T) {
	env := testenv.Start(t)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{env: env, cs: cs, reg: registry.Start(t, registry.WithAuth("puller", "s3cret-pull"))}
	h.ns = env.Namespace(t, "nodesim-pull")
	node := h.startNodeWith(t, "sim-pull", "127.0.0.4", Restore, RegistryOptions{Hosts: []string{h.reg.Host}})

	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(h.reg.Host + "/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret-pull"})); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret-pull"))
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ckpt-pull", Namespace: h.ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, h.reg.Host, auth))},
	}
	if _, err := cs.CoreV1().Secrets(h.ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	withPullSecrets := func(names ...string) podOpt {
		return func(p *corev1.Pod) {
			for _, n := range names {
				p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
			}
		}
	}

	h.createPod(t, node, "with-secret", ref.String(), withPullSecrets("missing", "ckpt-pull"))
	h.waitRunning(t, "with-secret")
	h.waitEvent(t, "with-secret", reasonPulled)

	h.createPod(t, node, "without-secret", ref.String())
	w := h.waitWaiting(t, "without-secret", reasonErrImagePull)
	if !strings.Contains(w.Message, "UNAUTHORIZED") && !strings.Contains(w.Message, "401") {
		t.Errorf("without a pull Secret: %s, want the registry's refusal", w.Message)
	}

	h.createPod(t, node, "missing-secret", ref.String(), withPullSecrets("missing"))
	h.waitWaiting(t, "missing-secret", reasonErrImagePull)
}
