package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"time"
)

// rawUpload is the floor: what any client must do to put the archive in a
// registry as an image. Hash the file once, POST to open an upload, PUT the
// whole file monolithically with its digest, then the config blob and the
// manifest. Plain net/http, no library.
func rawUpload(ctx context.Context, host, repo, tag, archive string, annotations map[string]string) (string, error) {
	base := "http://" + host + "/v2/" + repo
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	start := time.Now()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	layerDigest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	hashed := time.Now()
	if err := putBlob(ctx, base, layerDigest, f, size); err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	fmt.Fprintf(os.Stderr, "raw: hash %.2fs, layer upload %.2fs\n", hashed.Sub(start).Seconds(), time.Since(hashed).Seconds())

	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	configDigest := digestOf(config)
	if err := putBlob(ctx, base, configDigest, bytes.NewReader(config), int64(len(config))); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}

	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": size}},
		"annotations":   annotations,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/manifests/"+tag, bytes.NewReader(manifest))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if err := do(req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	return digestOf(manifest), nil
}

// putBlob is the monolithic upload: POST, then one PUT with the body.
func putBlob(ctx context.Context, base, digest string, body io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST upload: %s", resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	// body goes in as is: an *os.File lets net/http hand it to the kernel.
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if err != nil {
		return err
	}
	put.ContentLength = size
	put.Header.Set("Content-Type", "application/octet-stream")
	return do(put, http.StatusCreated)
}

func do(req *http.Request, want int) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg)
	}
	return nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
