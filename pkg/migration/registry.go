package migration

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ImageDeleter deletes a checkpoint image's manifest from its registry.
type ImageDeleter func(ctx context.Context, image string, kc authn.Keychain) error

// DeleteImage deletes image (repository@sha256:...) with
// go-containerregistry. A registry must allow deletes (distribution:
// storage.delete.enabled); blobs are reclaimed by its garbage collection.
// An image already gone is not an error.
func DeleteImage(ctx context.Context, image string, kc authn.Keychain) error {
	ref, err := name.NewDigest(image)
	if err != nil {
		return fmt.Errorf("delete image %q: %w", image, err)
	}
	if kc == nil {
		kc = anonymous{}
	}
	if err := remote.Delete(ref, remote.WithAuthFromKeychain(kc), remote.WithContext(ctx)); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete image %s: %w", image, err)
	}
	return nil
}

type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }
