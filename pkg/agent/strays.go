package agent

import (
	"context"
	"fmt"
	"regexp"
	"strings"

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
	entry.Images = append(entry.Images, archive.PushedImage{Container: container, Image: image, Attempt: cp.Status.Attempts})
	if err := r.Journal.Record(*entry); err != nil {
		return fail(reasonJournal, err)
	}
	return nil
}

// addStrayImages records in cp's status the pushed images that are not
// its result and not recorded yet, and returns how many it added. Images
// of earlier attempts keep the reason they were first recorded with; one
// not under cp's repository by digest is left out (the journal is a file
// on the node, and the status admission rule would refuse the write).
func addStrayImages(cp *v1alpha1.Checkpoint, pushed []archive.PushedImage, reason string) int {
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
