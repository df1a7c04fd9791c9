package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// floorRepository holds the floor's blobs; each is deleted after its run.
const floorRepository = "stateshift-bench/floor"

// blobTimeout bounds each of the upload and the download.
const blobTimeout = 3 * time.Minute

// blobRoundTrip uploads size random bytes to the registry as one
// uncompressed blob (POST, PATCH, PUT: what a push of a checkpoint layer
// does) and downloads it to the last byte, timing each. The bytes are new
// in every call: a blob the registry has would not be uploaded again.
func blobRoundTrip(ctx context.Context, registry string, size int64) (upload, download time.Duration, err error) {
	repo, err := name.NewRepository(registry+"/"+floorRepository, name.Insecure)
	if err != nil {
		return 0, 0, err
	}
	data := make([]byte, size)
	_, _ = rand.Read(data)
	layer := static.NewLayer(data, types.OCIUncompressedLayer)
	digest, err := layer.Digest() // computed once, before the clock runs
	if err != nil {
		return 0, 0, err
	}
	auth := framework.RegistryAuth(repo.RegistryStr())
	// Loopback only: no proxy from the environment.
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = nil

	upCtx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	start := time.Now()
	if err := remote.WriteLayer(repo, layer, remote.WithContext(upCtx), remote.WithAuth(auth), remote.WithTransport(base)); err != nil {
		return 0, 0, fmt.Errorf("upload %d MiB to %s: %w", size>>20, repo, err)
	}
	upload = time.Since(start)

	downCtx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	start = time.Now()
	c, err := blobClient(downCtx, repo, auth, base)
	if err != nil {
		return upload, 0, err
	}
	n, err := getBlob(downCtx, c, repo, digest)
	if err != nil {
		return upload, 0, err
	}
	download = time.Since(start)
	if n != size {
		return upload, download, fmt.Errorf("download of %s: %d bytes, uploaded %d", digest, n, size)
	}
	deleteBlob(ctx, c, repo, digest)
	return upload, download, nil
}

// blobClient is an HTTP client authorized for the repository (the
// registry's ping and challenge, as a pull makes them).
func blobClient(ctx context.Context, repo name.Repository, auth authn.Authenticator, base http.RoundTripper) (*http.Client, error) {
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
	}
	return &http.Client{Transport: rt}, nil
}

// getBlob reads a blob to its end without checking its digest (a raw
// download) and returns its length.
func getBlob(ctx context.Context, c *http.Client, repo name.Repository, digest v1.Hash) (int64, error) {
	url := blobURL(repo, digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	return n, nil
}

// deleteBlob removes the floor's blob (local-up's registry has delete
// enabled); a failure only leaves it in the registry's storage.
func deleteBlob(ctx context.Context, c *http.Client, repo name.Repository, digest v1.Hash) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := blobURL(repo, digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				err = fmt.Errorf("%s", resp.Status)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "  floor: the %s blob stays in the registry: DELETE %s: %v\n", digest, url, err)
	}
}

func blobURL(repo name.Repository, digest v1.Hash) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), digest)
}
