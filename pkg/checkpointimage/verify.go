package checkpointimage

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Verified is what Verify learned about a pushed checkpoint image.
type Verified struct {
	// Reference is repository@sha256:..., the only form stateshift records.
	Reference string
	Manifest  *v1.Manifest
	Container string
}

// Verify reads the image back from the registry by digest and checks what a
// runtime checks before restoring: a single OCI image manifest (not an index,
// not Docker v2s2, which drops annotations), the CRI-O annotation naming
// wantContainer (and the containerd key agreeing with it), exactly one layer.
func Verify(ctx context.Context, repository, digest, wantContainer string, kc authn.Keychain, opts ...name.Option) (*Verified, error) {
	if kc == nil {
		// Anonymous, never authn.DefaultKeychain: that would read the
		// node's ~/.docker/config.json.
		kc = authn.NewMultiKeychain()
	}
	return verify(ctx, repository, digest, wantContainer, remote.WithAuthFromKeychain(kc), opts)
}

// VerifyOver is Verify over rt, a transport already authenticated for the
// repository (the push's, transport.NewWithContext's): one request, no
// second handshake with the registry.
func VerifyOver(ctx context.Context, rt http.RoundTripper, repository, digest, wantContainer string, opts ...name.Option) (*Verified, error) {
	return verify(ctx, repository, digest, wantContainer, remote.WithTransport(rt), opts)
}

func verify(ctx context.Context, repository, digest, wantContainer string, access remote.Option, opts []name.Option) (*Verified, error) {
	ref, err := name.NewDigest(repository+"@"+digest, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %s@%s: %w", repository, digest, err)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), access)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", ref, err)
	}
	m, err := CheckManifest(desc.MediaType, desc.Manifest, wantContainer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return &Verified{Reference: ref.String(), Manifest: m, Container: m.Annotations[AnnotationCRIO]}, nil
}

// CheckManifest validates a raw manifest as a checkpoint image manifest.
// wantContainer may be empty to accept any container name.
func CheckManifest(mediaType types.MediaType, raw []byte, wantContainer string) (*v1.Manifest, error) {
	if mediaType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("manifest media type is %q, a checkpoint image needs %q", mediaType, types.OCIManifestSchema1)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	name, ok := m.Annotations[AnnotationCRIO]
	if !ok || name == "" {
		return nil, fmt.Errorf("manifest lacks annotation %s: not a checkpoint image", AnnotationCRIO)
	}
	if other, ok := m.Annotations[AnnotationCRIU]; ok && other != name {
		return nil, fmt.Errorf("annotations disagree: %s=%q, %s=%q", AnnotationCRIO, name, AnnotationCRIU, other)
	}
	if wantContainer != "" && name != wantContainer {
		return nil, fmt.Errorf("checkpoint image is of container %q, expected %q", name, wantContainer)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("checkpoint image has %d layers, expected 1", len(m.Layers))
	}
	return m, nil
}
