package migration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/pkg/restore"
)

// A Checkpoint's status is written by whoever may update checkpoints/status
// (a member's agent, reflected through Karmada): a compromised node could
// name any image there. Before an image is armed into a restore plan, or
// deleted by retention with the policy's credentials, the controller
// checks that it is this workload's own checkpoint: it lives in the
// policy's repository, and its manifest (read with the policy's
// credentials, with a deadline) records the Checkpoint's namespace, pod
// and container, as the agent writes them.

// manifestReadTimeout bounds one manifest read.
const manifestReadTimeout = 5 * time.Second

// errUntrusted marks a refusal (the image is not the Checkpoint's), as
// opposed to a registry that could not be read (retried).
var errUntrusted = errors.New("untrusted checkpoint image")

// errUnverifiable marks a registry that refuses the policy's credentials
// (401, 403): the origin cannot be read. Arming goes ahead with a Warning
// (the member's pod-restore webhook checks the namespace with its own
// credentials, and a person's move checks first that the destination can
// pull, falling back with ImageNotPullable); deleting waits, as the delete
// would be refused too.
var errUnverifiable = errors.New("checkpoint image origin unverifiable")

// trustedImages remembers images whose origin was checked: a manifest by
// digest never changes, so a positive answer holds for ever. Bounded: a
// full cache is emptied (the cost is one manifest read per image again).
var trustedImages = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

const trustedImagesMax = 4096

// ImageOrigin is what an image must record to be a Checkpoint's own.
type ImageOrigin struct {
	Repository, Namespace, Pod, Container string
}

// CheckImageOrigin checks image against o: by digest, in o.Repository,
// a checkpoint image whose manifest records o's namespace, pod and
// container. An error wrapping errUntrusted is a refusal.
func CheckImageOrigin(ctx context.Context, image string, o ImageOrigin, kc authn.Keychain) error {
	if !strings.HasPrefix(image, o.Repository+"@sha256:") || restore.CheckDigestImage(image) != nil {
		return fmt.Errorf("%w: %s is not an image of repository %s by digest", errUntrusted, image, o.Repository)
	}
	key := strings.Join([]string{image, o.Namespace, o.Pod, o.Container}, "\x00")
	trustedImages.Lock()
	known := trustedImages.m[key]
	trustedImages.Unlock()
	if known {
		return nil
	}
	if err := readOrigin(ctx, image, o, kc); err != nil {
		return err
	}
	trustedImages.Lock()
	if len(trustedImages.m) >= trustedImagesMax {
		trustedImages.m = map[string]bool{}
	}
	trustedImages.m[key] = true
	trustedImages.Unlock()
	return nil
}

// readOrigin reads image's manifest and compares what it records with o.
func readOrigin(ctx context.Context, image string, o ImageOrigin, kc authn.Keychain) error {
	ref, err := name.NewDigest(image)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUntrusted, image, err)
	}
	if kc == nil {
		kc = anonymous{}
	}
	ctx, cancel := context.WithTimeout(ctx, manifestReadTimeout)
	defer cancel()
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	var te *transport.Error
	switch {
	case isNotFound(err):
		return fmt.Errorf("%w: %s: no such manifest: %w", errUntrusted, image, err)
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w: the policy's credentials may not read %s: %w", errUnverifiable, image, err)
	case err != nil:
		return fmt.Errorf("read the manifest of %s: %w", image, err)
	}
	m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, o.Container)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errUntrusted, image, err)
	}
	got := ImageOrigin{Repository: o.Repository, Namespace: m.Annotations[checkpointimage.AnnotationNamespace],
		Pod: m.Annotations[checkpointimage.AnnotationPod], Container: o.Container}
	if got != o {
		return fmt.Errorf("%w: %s records pod %q in namespace %q, not %s/%s", errUntrusted, image, got.Pod, got.Namespace, o.Namespace, o.Pod)
	}
	return nil
}

// checkCheckpointImages checks every image of cp against repository.
func checkCheckpointImages(ctx context.Context, cp *v1alpha1.Checkpoint, repository string, kc authn.Keychain) error {
	for _, cc := range cp.Status.Containers {
		o := ImageOrigin{Repository: repository, Namespace: cp.Namespace, Pod: cp.Spec.PodName, Container: cc.Name}
		if err := CheckImageOrigin(ctx, cc.Image, o, kc); err != nil {
			return fmt.Errorf("checkpoint %s, container %s: %w", cp.Name, cc.Name, err)
		}
	}
	return nil
}

// trustedCheckpoints keeps the Checkpoints of latest (by pod, or by
// cluster and pod) whose images
// are the workload's own; each refused one gets an UntrustedCheckpoint
// Event (on the policy and on the Checkpoint) and is left out of the plan.
// A registry that cannot be read is an error: the plan stays as it is and
// the round is retried.
func trustedCheckpoints[K comparable](ctx context.Context, c *Controller, p *v1alpha1.CheckpointPolicy, latest map[K]*v1alpha1.Checkpoint) (map[K]*v1alpha1.Checkpoint, error) {
	if len(latest) == 0 {
		return latest, nil
	}
	kc := c.keychain(ctx, p)
	out := make(map[K]*v1alpha1.Checkpoint, len(latest))
	for pod, cp := range latest {
		err := checkCheckpointImages(ctx, cp, p.Spec.Repository, kc)
		switch {
		case errors.Is(err, errUntrusted):
			msg := fmt.Sprintf("not restored: %v", err)
			c.Recorder.Eventf(p, corev1.EventTypeWarning, "UntrustedCheckpoint", "%s", msg)
			c.Recorder.Eventf(cp, corev1.EventTypeWarning, "UntrustedCheckpoint", "%s", msg)
		case errors.Is(err, errUnverifiable):
			c.Recorder.Eventf(p, corev1.EventTypeWarning, "CheckpointUnverified", "armed without reading its origin: %v", err)
			out[pod] = cp
		case err != nil:
			return nil, err
		default:
			out[pod] = cp
		}
	}
	return out, nil
}

// mayDeleteImages says whether retention may delete cp's images with the
// credentials it names: only images that pass the same check, against the
// repository of the policy that made cp (its own spec.repository once the
// policy is gone). A refusal keeps the images (an Event says why) and lets
// the Checkpoint go; an unreadable registry is an error (retried).
func (c *Controller) mayDeleteImages(ctx context.Context, cp *v1alpha1.Checkpoint, kc authn.Keychain) (bool, error) {
	err := checkCheckpointImages(ctx, cp, c.imageRepository(ctx, cp), kc)
	if isNotFound(err) {
		return false, nil // already gone: nothing to delete
	}
	if errors.Is(err, errUntrusted) {
		c.Recorder.Eventf(cp, corev1.EventTypeWarning, "ImageNotDeleted", "images left in the registry: %v", err)
		return false, nil
	}
	return err == nil, err
}

// imageRepository is where cp's images must live to be deleted: the
// repository of the policy that made cp, its own spec.repository once the
// policy is gone (or for a person's Checkpoint).
func (c *Controller) imageRepository(ctx context.Context, cp *v1alpha1.Checkpoint) string {
	p := &v1alpha1.CheckpointPolicy{}
	if name := cp.Labels[LabelPolicy]; name != "" && c.Client.Get(ctx, client.ObjectKey{Namespace: cp.Namespace, Name: name}, p) == nil {
		return p.Spec.Repository
	}
	return cp.Spec.Repository
}

// ValidCheckpointName returns name when it can be a Checkpoint's name (and
// a label value, as restore plans carry it), "" otherwise: a value a member
// reflects is never used unchecked.
func ValidCheckpointName(name string) string {
	if len(validation.IsDNS1123Subdomain(name)) > 0 || len(validation.IsValidLabelValue(name)) > 0 {
		return ""
	}
	return name
}
