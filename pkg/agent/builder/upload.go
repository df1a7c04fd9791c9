package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// uploadFileBlob streams the archive at path to repo as one blob and returns
// it as a layer whose digest was computed on the way: one read of the
// archive instead of a hashing pass before remote.Write's upload (a
// quarter of the image stage for a large checkpoint). The registry checks
// the digest the final PUT names against what it received, so a file that
// changed under the upload fails it. remote.Write then finds the blob in
// place and only uploads the config and manifest.
func uploadFileBlob(ctx context.Context, repo name.Repository, kc authn.Keychain, path string) (*fileLayer, error) {
	auth, err := kc.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, http.DefaultTransport, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: rt}
	base := url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/uploads/"}

	location, err := uploadStep(ctx, hc, http.MethodPost, &base, nil, -1, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	location, err = uploadStep(ctx, hc, http.MethodPatch, location, io.TeeReader(f, h), -1, http.StatusAccepted, http.StatusNoContent, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	// The file's offset is what the upload read, and so what was hashed.
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("archive size: %w", err)
	}
	layer := &fileLayer{path: path, size: size, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}
	q := location.Query()
	q.Set("digest", layer.digest.String())
	location.RawQuery = q.Encode()
	if _, err := uploadStep(ctx, hc, http.MethodPut, location, nil, 0, http.StatusCreated); err != nil {
		return nil, err
	}
	return layer, nil
}

// uploadStep sends one request of the registry's upload protocol and
// returns the Location to continue at, resolved against target.
func uploadStep(ctx context.Context, hc *http.Client, method string, target *url.URL, body io.Reader, length int64, ok ...int) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if length >= 0 {
		req.ContentLength = length
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, ok...); err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return target, nil
	}
	return target.Parse(loc)
}
