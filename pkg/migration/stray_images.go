package migration

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Stray images (status.strayImages) are what attempts pushed and did not
// end as the Checkpoint's result: memory dumps no restore will use.
// Retention deletes them as soon as the Checkpoint is finished, and again
// (for any it could not) before the Checkpoint itself goes: the finalizer
// keeps a Checkpoint while the registry refuses, as for its results. The
// agent writes them, so each passes the same origin check as a result
// before the policy's credentials delete it, and none that a Checkpoint
// records as its result is ever deleted.

// strayImagesDone remembers, per Checkpoint UID and image, strays deleted,
// found gone or refused by the origin check: a manifest by digest never
// comes back, so a finished Checkpoint costs one registry round per
// controller run, not one per reconcile. Bounded like trustedImages: a
// full set is emptied (the cost is one manifest read per stray again).
var strayImagesDone = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

const strayImagesDoneMax = 8192

func strayKey(uid types.UID, image string) string { return string(uid) + "\x00" + image }

func strayDone(uid types.UID, image string) bool {
	strayImagesDone.Lock()
	defer strayImagesDone.Unlock()
	return strayImagesDone.m[strayKey(uid, image)]
}

func markStrayDone(uid types.UID, image string) {
	strayImagesDone.Lock()
	defer strayImagesDone.Unlock()
	if len(strayImagesDone.m) >= strayImagesDoneMax {
		strayImagesDone.m = map[string]bool{}
	}
	strayImagesDone.m[strayKey(uid, image)] = true
}

// pendingStrays are cp's stray images not handled yet in this run.
func pendingStrays(cp *v1alpha1.Checkpoint) []v1alpha1.StrayImage {
	var out []v1alpha1.StrayImage
	for _, s := range cp.Status.StrayImages {
		if !strayDone(cp.UID, s.Image) {
			out = append(out, s)
		}
	}
	return out
}

// deleteStrayImages deletes cp's stray images that are its own. One that
// fails the origin check, or is a Checkpoint's result, stays (an
// ImageNotDeleted Event says why); a registry that cannot be read or
// refuses the delete is an error, so that the caller keeps the Checkpoint
// and retries.
func (c *Controller) deleteStrayImages(ctx context.Context, cp *v1alpha1.Checkpoint, kc authn.Keychain) error {
	pending := pendingStrays(cp)
	if len(pending) == 0 {
		return nil
	}
	results, err := c.resultImages(ctx, cp.Namespace)
	if err != nil {
		return err
	}
	repository := c.imageRepository(ctx, cp)
	for _, s := range pending {
		if owner := results[s.Image]; owner != "" {
			c.Recorder.Eventf(cp, corev1.EventTypeWarning, "ImageNotDeleted", "stray image %s left in the registry: it is the result of checkpoint %s", s.Image, owner)
			strayImagesDeleted.WithLabelValues("refused").Inc()
			markStrayDone(cp.UID, s.Image)
			continue
		}
		if err := c.deleteStrayImage(ctx, cp, s, repository, kc); err != nil {
			strayImagesDeleted.WithLabelValues("error").Inc()
			return fmt.Errorf("checkpoint %s: stray image of container %s: %w", cp.Name, s.Container, err)
		}
		markStrayDone(cp.UID, s.Image)
	}
	return nil
}

// deleteStrayImage checks one stray image's origin, then deletes it.
func (c *Controller) deleteStrayImage(ctx context.Context, cp *v1alpha1.Checkpoint, s v1alpha1.StrayImage, repository string, kc authn.Keychain) error {
	o := ImageOrigin{Repository: repository, Namespace: cp.Namespace, Pod: cp.Spec.PodName, Container: s.Container}
	err := CheckImageOrigin(ctx, s.Image, o, kc)
	switch {
	case isNotFound(err):
		return nil // already gone
	case errors.Is(err, errUntrusted):
		c.Recorder.Eventf(cp, corev1.EventTypeWarning, "ImageNotDeleted", "stray image left in the registry: checkpoint %s: %v", cp.Name, err)
		strayImagesDeleted.WithLabelValues("refused").Inc()
		return nil
	case err != nil:
		return err
	}
	if err := c.DeleteImage(ctx, s.Image, kc); err != nil {
		return err
	}
	strayImagesDeleted.WithLabelValues("deleted").Inc()
	return nil
}

// resultImages maps every image a Checkpoint of namespace records as its
// result to that Checkpoint's name: a stray image naming one (a status
// written by a compromised node) must not delete a restorable checkpoint.
func (c *Controller) resultImages(ctx context.Context, namespace string) (map[string]string, error) {
	var l v1alpha1.CheckpointList
	if err := c.Client.List(ctx, &l, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list checkpoints of namespace %s: %w", namespace, err)
	}
	out := map[string]string{}
	for _, cp := range l.Items {
		for _, cc := range cp.Status.Containers {
			out[cc.Image] = cp.Name
		}
	}
	return out, nil
}

// deleteFinishedStrays deletes the stray images of the finished
// Checkpoints among cps, as soon as they are final rather than when
// retention prunes them (a Failed Checkpoint may stay as long as no newer
// one succeeds). A registry that refuses leaves them for the next round
// and for the finalizer; an Event on the Checkpoint says why.
func (c *Controller) deleteFinishedStrays(ctx context.Context, cps []v1alpha1.Checkpoint) {
	for i := range cps {
		cp := &cps[i]
		if !cp.IsFinished() || cp.DeletionTimestamp != nil || len(pendingStrays(cp)) == 0 {
			continue
		}
		kc := c.keychainOf(ctx, cp.Spec.CredentialsSecretRef, cp)
		if err := c.deleteStrayImages(ctx, cp, kc); err != nil {
			c.Recorder.Eventf(cp, corev1.EventTypeWarning, "ImageDeleteFailed", "stray images kept, retried: %v", err)
		}
	}
}
