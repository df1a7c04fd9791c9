package migration

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// FinalizerImages on a Checkpoint the controller created: its images (its
// results and the stray images of its failed attempts) are deleted from
// the registry before it goes, whoever deletes it (retention,
// the garbage collector after its CheckpointPolicy, a person).
const FinalizerImages = v1alpha1.KeyPrefix + "delete-images"

// CheckpointImagesReconciler (part of the checkpoints controller) deletes
// a deleted Checkpoint's images, then lets it go. A registry that refuses
// keeps the Checkpoint, with an Event, and is asked again with backoff:
// the Checkpoint is the only record of its images.
type CheckpointImagesReconciler struct{ *Controller }

func setupCheckpointImages(mgr manager.Manager, c *Controller) error {
	deleting := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetDeletionTimestamp() != nil && controllerutil.ContainsFinalizer(o, FinalizerImages)
	})
	return ctrl.NewControllerManagedBy(mgr).Named("stateshift-checkpoint-images").WithOptions(c.bounded()).
		For(&v1alpha1.Checkpoint{}, builder.WithPredicates(deleting)).
		Complete(CheckpointImagesReconciler{c})
}

// Reconcile implements reconcile.Reconciler.
func (r CheckpointImagesReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cp := &v1alpha1.Checkpoint{}
	if err := r.Client.Get(ctx, req.NamespacedName, cp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cp.DeletionTimestamp == nil || !controllerutil.ContainsFinalizer(cp, FinalizerImages) {
		return ctrl.Result{}, nil
	}
	if err := r.deleteImages(ctx, cp, r.keychainOf(ctx, cp.Spec.CredentialsSecretRef, cp)); err != nil {
		checkpointsPruned.WithLabelValues("error").Inc()
		r.Recorder.Eventf(cp, corev1.EventTypeWarning, "ImageDeleteFailed", "kept until its images are deleted: %v", err)
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(cp.DeepCopy())
	controllerutil.RemoveFinalizer(cp, FinalizerImages)
	if err := r.Client.Patch(ctx, cp, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	checkpointsPruned.WithLabelValues("ok").Inc()
	return ctrl.Result{}, nil
}

// deleteImages deletes cp's results, then its stray images (those the
// finished Checkpoint's round could not delete).
func (c *Controller) deleteImages(ctx context.Context, cp *v1alpha1.Checkpoint, kc authn.Keychain) error {
	if err := c.deleteResultImages(ctx, cp, kc); err != nil {
		return err
	}
	return c.deleteStrayImages(ctx, cp, kc) // stray_images.go
}

func (c *Controller) deleteResultImages(ctx context.Context, cp *v1alpha1.Checkpoint, kc authn.Keychain) error {
	if ok, err := c.mayDeleteImages(ctx, cp, kc); !ok { // image_trust.go
		return err
	}
	for _, cc := range cp.Status.Containers {
		if err := c.DeleteImage(ctx, cc.Image, kc); err != nil {
			return fmt.Errorf("checkpoint %s: %w", cp.Name, err)
		}
	}
	return nil
}
