package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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
// layer made from the archive, streamed to the registry as one PATCH body
// read from the file (memory stays flat whatever the archive size), then
// the config and the manifest: seven requests in all for an uncompressed
// layer.
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

	// One handshake with the registry for the whole push (and the
	// caller's read-back, through Result.Transport).
	session, err := newPushSession(ctx, tag.Context(), kc)
	if kind := classifyGo(err); kind != nil {
		return Result{}, fmt.Errorf("native: push %s: %w: %v", tag, kind, err)
	}
	if err != nil {
		return Result{}, fmt.Errorf("native: push %s: %w", tag, err)
	}
	var layer v1.Layer
	if req.Compression == v1alpha1.LayerCompressionGzip {
		// tarball compresses on the fly, once for the digest and again for
		// the upload: CPU for flat memory.
		layer, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(req.ArchivePath) },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return Result{}, fmt.Errorf("native: layer from %s: %w", req.ArchivePath, err)
		}
	} else {
		layer, err = session.uploadFile(ctx, req.ArchivePath)
		if kind := classifyGo(err); kind != nil {
			return Result{}, fmt.Errorf("native: push %s: %w: %v", tag, kind, err)
		}
		if err != nil {
			return Result{}, fmt.Errorf("native: upload %s to %s: %w", req.ArchivePath, tag.Context(), err)
		}
	}

	img, err := checkpointImage(layer, req.Annotations)
	if err != nil {
		return Result{}, err
	}
	if err := session.push(ctx, tag, img, req.Compression == v1alpha1.LayerCompressionGzip); err != nil {
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
		Transport:  session.rt,
	}, nil
}

// checkpointImage is the OCI image of one layer with the checkpoint
// annotations on its manifest.
func checkpointImage(layer v1.Layer, annotations map[string]string) (v1.Image, error) {
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		return nil, fmt.Errorf("native: config: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer})
	if err != nil {
		return nil, fmt.Errorf("native: append layer: %w", err)
	}
	img, ok := mutate.Annotations(img, annotations).(v1.Image)
	if !ok {
		return nil, errors.New("native: annotating the image did not yield an image")
	}
	return img, nil
}

// push writes what the registry does not have yet: with the layer
// already uploaded, the config and the manifest (three requests);
// otherwise remote.Write uploads the layer too.
func (s *pushSession) push(ctx context.Context, tag name.Tag, img v1.Image, layerPending bool) error {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(s.rt)}
	if layerPending {
		return remote.Write(tag, img, opts...)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	digest, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config digest: %w", err)
	}
	if err := s.uploadBytes(ctx, raw, digest); err != nil {
		return fmt.Errorf("upload config: %w", err)
	}
	// Put writes the manifest alone; the registry refuses it if a blob it
	// names is missing.
	return remote.Put(tag, img, opts...)
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
