package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Native builds the image in process with go-containerregistry: one OCI
// layer made from the archive, streamed to the registry (remote.Write sends
// the layer as one PATCH body read from the file), so memory stays flat
// whatever the archive size.
type Native struct{}

// NewNative returns the native builder.
func NewNative() *Native { return &Native{} }

// Name is "native", as in the Checkpoint API.
func (*Native) Name() string { return string(v1alpha1.BuilderNative) }

// Build pushes req.ArchivePath as a single-layer OCI checkpoint image.
func (n *Native) Build(ctx context.Context, req Request) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	tag, err := req.tag()
	if err != nil {
		return Result{}, err
	}
	kc, err := keychainFromAuthFile(req.AuthFile)
	if err != nil {
		return Result{}, err
	}

	var layer v1.Layer
	if req.Compression == v1alpha1.LayerCompressionGzip {
		// tarball compresses on the fly, once for the digest and again for
		// the upload: CPU for flat memory.
		layer, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(req.ArchivePath) },
			tarball.WithMediaType(types.OCILayer))
	} else {
		layer, err = uploadFileBlob(ctx, tag.Context(), kc, req.ArchivePath)
		if kind := classifyGo(err); kind != nil {
			return Result{}, fmt.Errorf("native: push %s: %w: %v", tag, kind, err)
		}
		if err != nil {
			return Result{}, fmt.Errorf("native: upload %s to %s: %w", req.ArchivePath, tag.Context(), err)
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("native: layer from %s: %w", req.ArchivePath, err)
	}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		return Result{}, fmt.Errorf("native: config: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer})
	if err != nil {
		return Result{}, fmt.Errorf("native: append layer: %w", err)
	}
	img, ok := mutate.Annotations(img, req.Annotations).(v1.Image)
	if !ok {
		return Result{}, errors.New("native: annotating the image did not yield an image")
	}

	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)); err != nil {
		if kind := classifyGo(err); kind != nil {
			return Result{}, fmt.Errorf("native: push %s: %w: %v", tag, kind, err)
		}
		return Result{}, fmt.Errorf("native: push %s: %w", tag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Result{}, fmt.Errorf("native: manifest digest: %w", err)
	}
	size, err := layer.Size()
	if err != nil {
		return Result{}, fmt.Errorf("native: layer size: %w", err)
	}
	return Result{
		Digest:     digest.String(),
		Reference:  tag.Context().Digest(digest.String()).String(),
		LayerBytes: size,
	}, nil
}

// keychainFromAuthFile is how both backends get credentials: from the auth
// file the caller wrote with registryauth, or none.
func keychainFromAuthFile(path string) (authn.Keychain, error) {
	if path == "" {
		return anonymous{}, nil
	}
	cfg, err := registryauth.LoadAuthFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return cfg.Keychain(), nil
}

// anonymous never reads ~/.docker/config.json, unlike authn.DefaultKeychain:
// an empty AuthFile means no credentials.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }
