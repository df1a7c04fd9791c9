package agent

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/agent/archive"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Every image an attempt pushes is a memory dump in the registry: the
// Checkpoint must name it, as its result (status.containers) or as a stray
// image (status.strayImages), so that retention can delete it. The
// journal holds it from the moment the push returns its digest until the
// status names it.

// reasonInterrupted marks a stray image found in the journal: the attempt
// that pushed it ended without recording it (the agent was killed, or the
// status write failed).
const reasonInterrupted = "Interrupted"

// reasonNotResult marks an image of a succeeding attempt that is not its
// result (a defensive case: each pushed image of such an attempt is one).
const reasonNotResult = "NotResult"

var manifestDigest = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// pushedImage is repository@digest when the builder returned a manifest
// digest. A push under another repository, or a digest of another form,
// is never recorded: the status admission rule and retention trust that
// these images are the Checkpoint's own.
func pushedImage(repository, digest string) (string, error) {
	if !manifestDigest.MatchString(digest) {
		return "", fmt.Errorf("the builder returned %q, not a sha256 manifest digest", digest)
	}
	return repository + "@" + digest, nil
}

// underRepository says whether image is repository@sha256:<hex>.
func underRepository(image, repository string) bool {
	d, ok := strings.CutPrefix(image, repository+"@")
	return ok && manifestDigest.MatchString(d)
}

// recordPushed journals the image one push produced, before anything else
// can fail.
func (r *Reconciler) recordPushed(cp *v1alpha1.Checkpoint, entry *archive.Entry, container, digest string) error {
	image, err := pushedImage(cp.Spec.Repository, digest)
	if err != nil {
		return permanent(reasonPush, fmt.Errorf("container %s: %w", container, err))
	}
	return r.journalImage(entry, archive.PushedImage{Container: container, Image: image, Attempt: cp.Status.Attempts})
}

func (r *Reconciler) journalImage(entry *archive.Entry, p archive.PushedImage) error {
	entry.Images = append(entry.Images, p)
	if err := r.Journal.Record(*entry); err != nil {
		return fail(reasonJournal, err)
	}
	return nil
}

// recordTaggedImage journals the manifest that container's tag names when
// no record names it: a push whose digest never came back (its answer
// lost, its deadline hit, the agent stopped) may still have stored it.
// The tag holds the Checkpoint's UID prefix, so only this Checkpoint's
// attempts push it. A registry that does not answer is only logged: the
// attempt reports its own error.
func (r *Reconciler) recordTaggedImage(ctx context.Context, job pushJob, container string, attempt int32) {
	log := klog.FromContext(ctx)
	repo := job.cp.Spec.Repository
	ref, err := name.NewTag(repo+":"+imageTag(job.pod.Name, container, string(job.cp.UID)), job.nameOpts...)
	if err != nil {
		log.Error(err, "checkpoint image tag")
		return
	}
	hctx, cancel := context.WithTimeout(ctx, min(r.VerifyTimeout, tagLookupTimeout))
	defer cancel()
	desc, err := remote.Head(ref, remote.WithContext(hctx), remote.WithAuthFromKeychain(job.keychain))
	if err != nil {
		log.V(2).Info("No manifest found under the checkpoint image's tag", "tag", ref.String(), "err", err.Error())
		return
	}
	image, err := pushedImage(repo, desc.Digest.String())
	if err != nil || namesImage(job.cp, job.entry, image) {
		return
	}
	log.Info("Found a pushed checkpoint image no record named", "image", image, "container", container)
	if err := r.journalImage(job.entry, archive.PushedImage{Container: container, Image: image, Attempt: attempt}); err != nil {
		log.Error(err, "journal a pushed checkpoint image")
	}
}

// tagLookupTimeout bounds recordTaggedImage's HEAD: it runs after a push
// already failed, often against a registry in trouble, and must not
// stretch the attempt by a full verify deadline.
const tagLookupTimeout = 30 * time.Second

// namesImage says whether cp's status or the journal entry names image.
func namesImage(cp *v1alpha1.Checkpoint, entry *archive.Entry, image string) bool {
	for _, c := range cp.Status.Containers {
		if c.Image == image {
			return true
		}
	}
	for _, s := range cp.Status.StrayImages {
		if s.Image == image {
			return true
		}
	}
	for _, p := range entry.Images {
		if p.Image == image {
			return true
		}
	}
	return false
}

// addStrayImages records in cp's status the pushed images that are not
// its result and not recorded yet, and returns how many it added: those
// of the current attempt (cp.Status.Attempts) with its failure reason,
// those of earlier attempts that no status named as Interrupted. Images
// recorded before keep their reason; one not under cp's repository by
// digest is left out (the journal is a file on the node, and the status
// admission rule would refuse the write).
func addStrayImages(cp *v1alpha1.Checkpoint, pushed []archive.PushedImage, failureReason string) int {
	known := map[string]bool{}
	for _, c := range cp.Status.Containers {
		known[c.Image] = true
	}
	for _, s := range cp.Status.StrayImages {
		known[s.Image] = true
	}
	added := 0
	for _, p := range pushed {
		if known[p.Image] || !underRepository(p.Image, cp.Spec.Repository) {
			continue
		}
		known[p.Image] = true
		reason := reasonInterrupted
		if p.Attempt == cp.Status.Attempts {
			reason = failureReason
		}
		cp.Status.StrayImages = append(cp.Status.StrayImages, v1alpha1.StrayImage{
			Container: p.Container, Image: p.Image, Attempt: p.Attempt, Reason: reason})
		added++
	}
	return added
}

// recoverJournaledImages adds to cp's status the images its journal entry
// holds that no status names yet: an earlier attempt pushed them and ended
// without recording them.
func (r *Reconciler) recoverJournaledImages(cp *v1alpha1.Checkpoint) {
	if e, ok := r.Journal.Lookup(string(cp.UID)); ok {
		addStrayImages(cp, e.Images, reasonInterrupted)
	}
}

// reportJournaledImages finishes the journal entry of a Checkpoint this
// node executed to its end: an agent killed between the final status
// write and forgetting the entry left it (with images to report when the
// write was lost). The entry goes once the status names every image.
func (r *Reconciler) reportJournaledImages(ctx context.Context, cp *v1alpha1.Checkpoint) error {
	if cp.Status.NodeName != r.NodeName {
		return nil
	}
	e, ok := r.Journal.Lookup(string(cp.UID))
	if !ok {
		return nil
	}
	if addStrayImages(cp, e.Images, reasonInterrupted) > 0 {
		if err := r.Client.Status().Update(ctx, cp); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("record stray images: %w", err)
		}
	}
	// A late archive of the entry goes with it (the sweep did this at
	// start; a Reconcile later may come from a spec change).
	if _, err := archive.Delete(r.CheckpointDir, e); err != nil {
		klog.FromContext(ctx).Error(err, "delete checkpoint archives")
		return nil
	}
	r.forgetJournal(ctx, e.UID)
	return nil
}
