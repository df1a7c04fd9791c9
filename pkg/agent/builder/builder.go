package builder

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// Request is one archive to turn into a pushed checkpoint image.
type Request struct {
	// ArchivePath is the kubelet's checkpoint archive (tar); read only.
	ArchivePath string
	// Repository is where to push, e.g. 127.0.0.1:5000/team/app.
	Repository string
	// Tag is pushed; the result is recorded by digest.
	Tag string
	// Annotations go on the manifest (checkpointimage.Annotations); the
	// CRI-O key is required.
	Annotations map[string]string
	// AuthFile is a docker config.json (registryauth.WriteAuthFile), or ""
	// for anonymous access. Both backends read credentials only from it.
	AuthFile string
	// Insecure: the registry speaks plain HTTP (loopback test registries).
	Insecure bool
	// Compression of the layer, Native only ("" means none). buildah 1.28
	// always gzips layers it pushes to a registry (its -D is ignored there).
	Compression v1alpha1.LayerCompression
}

// Result is what was pushed.
type Result struct {
	// Digest is sha256:... of the manifest.
	Digest string
	// Reference is Repository@Digest.
	Reference string
	// LayerBytes is the size of the pushed layer blob.
	LayerBytes int64
	// Transport, when not nil, is the push's transport, authenticated for
	// Repository: reading the image back over it needs no new handshake
	// with the registry (checkpointimage.VerifyOver).
	Transport http.RoundTripper
}

// ImageBuilder builds and pushes a checkpoint image.
type ImageBuilder interface {
	// Name is the builder's name as in the Checkpoint API (buildah, native).
	Name() string
	Build(ctx context.Context, req Request) (Result, error)
}

// validate checks what both backends need before any work starts.
func (r Request) validate() error {
	if r.ArchivePath == "" {
		return fmt.Errorf("%w: no archive path", ErrInvalidRequest)
	}
	fi, err := os.Stat(r.ArchivePath)
	if err != nil {
		return fmt.Errorf("%w: archive: %v", ErrInvalidRequest, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: archive %s is not a regular file", ErrInvalidRequest, r.ArchivePath)
	}
	if _, err := r.tag(); err != nil {
		return err
	}
	if r.Annotations[checkpointimage.AnnotationCRIO] == "" {
		return fmt.Errorf("%w: annotation %s (the container name) is required", ErrInvalidRequest, checkpointimage.AnnotationCRIO)
	}
	for k := range r.Annotations {
		if k == "" || strings.ContainsAny(k, "=\x00\n") {
			return fmt.Errorf("%w: bad annotation key %q", ErrInvalidRequest, k)
		}
	}
	switch r.Compression {
	case "", v1alpha1.LayerCompressionNone, v1alpha1.LayerCompressionGzip:
	default:
		return fmt.Errorf("%w: unknown compression %q", ErrInvalidRequest, r.Compression)
	}
	return nil
}

// tag is the one place that parses Repository:Tag, with go-containerregistry's
// rules (buildah takes the same string behind docker://).
func (r Request) tag() (name.Tag, error) {
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	if r.Repository == "" || r.Tag == "" {
		return name.Tag{}, fmt.Errorf("%w: repository and tag are required", ErrInvalidRequest)
	}
	t, err := name.NewTag(r.Repository+":"+r.Tag, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("%w: image reference %s:%s: %v", ErrInvalidRequest, r.Repository, r.Tag, err)
	}
	return t, nil
}
