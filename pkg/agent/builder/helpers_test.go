package builder

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/registry"
)

// writeArchive writes a checkpoint archive in the kubelet's layout, with
// pageBytes of random "memory" so the layer cannot compress.
func writeArchive(t testing.TB, dir string, pageBytes int) string {
	t.Helper()
	path := filepath.Join(dir, "checkpoint-app_team-web-2026-11-26T07:00:00Z.tar")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	pages := make([]byte, pageBytes)
	if _, err := rand.Read(pages); err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"config.dump", []byte(`{"id":"abc","name":"web","rootfsImageName":"docker.io/library/busybox:1.36"}`)},
		{"spec.dump", []byte(`{"ociVersion":"1.0.2","annotations":{"io.kubernetes.pod.name":"app"}}`)},
		{"checkpoint/pages-1.img", pages},
	}
	if err := tw.WriteHeader(&tar.Header{Name: "checkpoint/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, fl := range files {
		if err := tw.WriteHeader(&tar.Header{Name: fl.name, Mode: 0o600, Size: int64(len(fl.data)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(fl.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readerSHA(t, f)
}

func readerSHA(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tarFiles maps each regular file of a tar stream to its sha256, names
// without a leading "./" or "/".
func tarFiles(t testing.TB, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read layer tar: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		n := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		out[n] = readerSHA(t, tr)
	}
}

func archiveFiles(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return tarFiles(t, f)
}

func testAnnotations() map[string]string {
	return checkpointimage.Annotations(checkpointimage.Source{Container: "web", Pod: "app", Namespace: "team", RootfsImage: "docker.io/library/busybox:1.36"})
}

// dockerSecret is the registry Secret a user would create.
func dockerSecret(host, user, password string) *corev1.Secret {
	raw, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	s := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: raw}}
	s.Namespace, s.Name = "team", "registry"
	return s
}

// authFileFor goes the way the agent goes: Secret -> registryauth -> file.
func authFileFor(t testing.TB, host, user, password string) (string, *registryauth.Config) {
	t.Helper()
	cfg, err := registryauth.Parse(dockerSecret(host, user, password))
	if err != nil {
		t.Fatal(err)
	}
	path, cleanup, err := cfg.WriteAuthFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return path, cfg
}

// pushedLayer reads the single layer of a pushed image back by digest.
func pushedLayer(t testing.TB, ctx context.Context, res Result, cfg *registryauth.Config) (*v1.Manifest, v1.Layer) {
	t.Helper()
	ref, err := name.NewDigest(res.Reference, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var opts []remote.Option
	opts = append(opts, remote.WithContext(ctx))
	if cfg != nil {
		opts = append(opts, remote.WithAuthFromKeychain(cfg.Keychain()))
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("read back %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	return m, layers[0]
}

// newBuildah returns a buildah backend with its own storage under a temp
// folder, and the buildah binary (installed by hack/install-debs.sh if
// missing).
func newBuildah(t testing.TB, driver string) *Buildah {
	t.Helper()
	if _, err := exec.LookPath("buildah"); err != nil {
		registry.Binary(t) // installs the Debian packages, buildah included
	}
	dir := t.TempDir()
	b := &Buildah{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), StorageDriver: driver, TmpDir: dir}
	t.Cleanup(func() {
		// Unmount anything left so TempDir removal works even if a test failed.
		_, _, _ = ExecRunner(context.Background(), Command{Args: []string{"buildah", "--root", b.Root, "--runroot", b.RunRoot, "--storage-driver", driver, "rm", "--all"}, Env: b.env()})
		_, _, _ = ExecRunner(context.Background(), Command{Args: []string{"buildah", "--root", b.Root, "--runroot", b.RunRoot, "--storage-driver", driver, "rmi", "--all", "--force"}, Env: b.env()})
	})
	return b
}

// leftovers lists containers and images in b's storage.
func leftovers(t testing.TB, b *Buildah) (containers, images string) {
	t.Helper()
	c, err := b.run(context.Background(), nil, "containers", "--all", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	i, err := b.run(context.Background(), nil, "images", "--all", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(c)), strings.TrimSpace(string(i))
}

func gunzipSHA(t testing.TB, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	return readerSHA(t, zr)
}
