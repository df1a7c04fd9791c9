package migration

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// ImagePullChecker checks that an image can be pulled with kc.
type ImagePullChecker func(ctx context.Context, image string, kc authn.Keychain) error

// CheckImagePullable asks the registry, with kc, for image's manifest and
// HEADs its config and layer blobs: what a node pulling it needs. It reads
// no blob.
func CheckImagePullable(ctx context.Context, image string, kc authn.Keychain) error {
	ref, err := name.NewDigest(image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	if kc == nil {
		kc = anonymous{}
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(kc), remote.WithContext(ctx)}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", image, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", image, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		l, err := remote.Layer(ref.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return fmt.Errorf("blob %s of %s: %w", d.Digest, image, err)
		}
		ex, ok := l.(interface{ Exists() (bool, error) })
		if !ok {
			return fmt.Errorf("blob %s of %s: cannot ask the registry whether it exists", d.Digest, image)
		}
		if found, err := ex.Exists(); err != nil || !found {
			return fmt.Errorf("blob %s of %s is not pullable: exists=%v %v", d.Digest, image, found, err)
		}
	}
	return nil
}
