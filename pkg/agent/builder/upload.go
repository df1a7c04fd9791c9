package builder

import (
	"bytes"
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

// pushSession is one push to one repository over one authenticated
// transport. The registry's handshake (GET /v2/ and, with token auth, the
// token) happens once for the layer, the config, the manifest and the
// caller's read-back, instead of once for each: distribution 2.8 spends
// most of a small checkpoint's CPU on per-request routing, so a
// scheduled round of many small images costs the registry its request
// count.
type pushSession struct {
	rt   http.RoundTripper // a *transport.Wrapper: remote reuses it as is
	hc   *http.Client
	base url.URL // the repository's /blobs/uploads/
}

func newPushSession(ctx context.Context, repo name.Repository, kc authn.Keychain) (*pushSession, error) {
	auth, err := kc.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, http.DefaultTransport, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, err
	}
	return &pushSession{rt: rt, hc: &http.Client{Transport: rt},
		base: url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/uploads/"}}, nil
}

// uploadFile streams the archive at path to the repository as one blob and
// returns it as a layer whose digest was computed on the way: one read of
// the archive instead of a hashing pass before the upload (a quarter of
// the image stage for a large checkpoint). The registry checks the digest
// the final PUT names against what it received, so a file that changed
// under the upload fails it.
func (s *pushSession) uploadFile(ctx context.Context, path string) (*fileLayer, error) {
	location, err := uploadStep(ctx, s.hc, http.MethodPost, &s.base, nil, -1, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	location, err = uploadStep(ctx, s.hc, http.MethodPatch, location, io.TeeReader(f, h), -1, http.StatusAccepted, http.StatusNoContent, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	// The file's offset is what the upload read, and so what was hashed.
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("archive size: %w", err)
	}
	layer := &fileLayer{path: path, size: size, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}}
	if _, err := uploadStep(ctx, s.hc, http.MethodPut, withDigest(location, layer.digest), nil, 0, http.StatusCreated); err != nil {
		return nil, err
	}
	return layer, nil
}

// uploadBytes uploads a small blob (the image config) whose digest is
// known: a POST and a PUT that carries it, with no existence check first
// (uploading a blob the repository has is harmless, and the check would
// be a request of its own for every image).
func (s *pushSession) uploadBytes(ctx context.Context, data []byte, digest v1.Hash) error {
	location, err := uploadStep(ctx, s.hc, http.MethodPost, &s.base, nil, -1, http.StatusAccepted)
	if err != nil {
		return err
	}
	_, err = uploadStep(ctx, s.hc, http.MethodPut, withDigest(location, digest), bytes.NewReader(data), int64(len(data)), http.StatusCreated)
	return err
}

func withDigest(location *url.URL, digest v1.Hash) *url.URL {
	u := *location
	q := u.Query()
	q.Set("digest", digest.String())
	u.RawQuery = q.Encode()
	return &u
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
