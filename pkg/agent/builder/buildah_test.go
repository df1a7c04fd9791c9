package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/registry"
)

const testPassword = "Pw-9f3c1e7a-never-print-me"

// TestBuildahPushesVerifiableImage runs the product's recipe with both
// storage drivers and checks what CRI-O needs: an OCI manifest carrying both
// annotations (buildah config --annotation lands in the manifest), one
// layer holding the archive's files, and an empty storage afterwards.
func TestBuildahPushesVerifiableImage(t *testing.T) {
	for _, driver := range []string{"overlay", "vfs"} {
		t.Run(driver, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			reg := registry.Start(t)
			b := newBuildah(t, driver)
			archive := writeArchive(t, t.TempDir(), 3<<20)
			repo := reg.Host + "/team/app"

			res, err := b.Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v1", Annotations: testAnnotations(), Insecure: true})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if res.Reference != repo+"@"+res.Digest {
				t.Errorf("reference %s", res.Reference)
			}
			if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", nil, name.Insecure); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			m, layer := pushedLayer(t, ctx, res, nil)
			for k, v := range testAnnotations() {
				if m.Annotations[k] != v {
					t.Errorf("manifest annotation %s=%q, want %q", k, m.Annotations[k], v)
				}
			}
			if m.Layers[0].MediaType != types.OCILayer {
				t.Errorf("layer media type %s (buildah 1.28 gzips on push)", m.Layers[0].MediaType)
			}
			if res.LayerBytes != m.Layers[0].Size {
				t.Errorf("LayerBytes %d, manifest %d", res.LayerBytes, m.Layers[0].Size)
			}
			// buildah add unpacks the archive, so compare files, not bytes.
			rc, err := layer.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			got := tarFiles(t, rc)
			_ = rc.Close()
			want := archiveFiles(t, archive)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("layer files %v\narchive files %v", got, want)
			}
			if c, i := leftovers(t, b); c != "" || i != "" {
				t.Errorf("buildah left containers %q images %q", c, i)
			}
		})
	}
}

func TestBuildahAuthAndSecretHygiene(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg := registry.Start(t, registry.WithAuth("alice", testPassword))
	archive := writeArchive(t, t.TempDir(), 1<<20)
	repo := reg.Host + "/team/app"

	// A wrapper named buildah first on PATH records what the real buildah
	// receives: argv and the whole environment.
	realBuildah, err := exec.LookPath("buildah")
	if err != nil {
		t.Fatal(err)
	}
	wrapDir := t.TempDir()
	record := filepath.Join(wrapDir, "record.log")
	script := fmt.Sprintf("#!/bin/sh\n{ echo ARGV: \"$@\"; env; } >> %s\nexec %s \"$@\"\n", record, realBuildah)
	if err := os.WriteFile(filepath.Join(wrapDir, "buildah"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", wrapDir+":"+os.Getenv("PATH"))

	good, cfg := authFileFor(t, reg.Host, "alice", testPassword)
	// The agent's own environment must not reach buildah: a good auth file
	// named by REGISTRY_AUTH_FILE would make the wrong-password push below
	// succeed, and a secret in any variable would show in the record.
	t.Setenv("REGISTRY_AUTH_FILE", good)
	t.Setenv("STATESHIFT_TEST_SECRET", testPassword)

	b := newBuildah(t, "overlay")
	var mu sync.Mutex
	var seen []string
	b.Run = func(ctx context.Context, c Command) ([]byte, []byte, error) {
		out, errb, err := ExecRunner(ctx, c)
		mu.Lock()
		seen = append(seen, strings.Join(c.Args, " "), strings.Join(c.Env, " "), string(out), string(errb))
		mu.Unlock()
		return out, errb, err
	}

	res, err := b.Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v1", Annotations: testAnnotations(), Insecure: true, AuthFile: good})
	if err != nil {
		t.Fatalf("Build with the Secret's credentials: %v", err)
	}
	if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", cfg.Keychain(), name.Insecure); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	bad, _ := authFileFor(t, reg.Host, "alice", "wrong-"+testPassword)
	_, buildErr := b.Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v2", Annotations: testAnnotations(), Insecure: true, AuthFile: bad})
	if !errors.Is(buildErr, ErrUnauthorized) || !strings.Contains(buildErr.Error(), "unauthorized") {
		t.Fatalf("wrong password: want ErrUnauthorized, got %v", buildErr)
	}
	t.Logf("wrong password error: %v", buildErr)
	if c, i := leftovers(t, b); c != "" || i != "" {
		t.Errorf("failed push left containers %q images %q", c, i)
	}

	recorded, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(recorded), "ARGV: --root") || !strings.Contains(string(recorded), "--authfile "+good) {
		t.Fatalf("wrapper did not see buildah push --authfile; record:\n%s", recorded)
	}
	everything := string(recorded) + strings.Join(seen, "\n") + buildErr.Error()
	for _, secret := range []string{testPassword, "alice:", "YWxpY2U6"} { // YWxpY2U6 = base64("alice:")
		if strings.Contains(everything, secret) {
			t.Errorf("%q appears in buildah argv/env/output or the error", secret)
		}
	}
	for _, flag := range []string{"--creds", "--password", " -p ", "REGISTRY_AUTH_FILE"} {
		if strings.Contains(string(recorded), flag) {
			t.Errorf("buildah was given %s", flag)
		}
	}
}

func TestBuildahRegistryDownIsClearAndBounded(t *testing.T) {
	reg := registry.Start(t)
	reg.Stop()
	b := newBuildah(t, "overlay")
	archive := writeArchive(t, t.TempDir(), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Build(ctx, Request{ArchivePath: archive, Repository: reg.Host + "/team/app", Tag: "v1", Annotations: testAnnotations(), Insecure: true})
	if !errors.Is(err, ErrRegistryUnreachable) {
		t.Fatalf("want ErrRegistryUnreachable, got %v", err)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Fatalf("took %v", d)
	}
	if c, i := leftovers(t, b); c != "" || i != "" {
		t.Errorf("failed push left containers %q images %q", c, i)
	}
}

// TestBuildahCancelledBuildCleansUp cancels during the build: the clean-up
// runs on a fresh context and leaves nothing behind.
func TestBuildahCancelledBuildCleansUp(t *testing.T) {
	reg := registry.Start(t)
	b := newBuildah(t, "overlay")
	archive := writeArchive(t, t.TempDir(), 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	b.Run = func(c context.Context, cmd Command) ([]byte, []byte, error) {
		out, errb, err := ExecRunner(c, cmd)
		steps++
		if steps == 3 { // after from and add, before commit
			cancel()
		}
		return out, errb, err
	}
	_, err := b.Build(ctx, Request{ArchivePath: archive, Repository: reg.Host + "/team/app", Tag: "v1", Annotations: testAnnotations(), Insecure: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	b.Run = nil
	if c, i := leftovers(t, b); c != "" || i != "" {
		t.Errorf("cancelled build left containers %q images %q", c, i)
	}
}

// TestBuildahStorageStaysFlat builds several images in one storage root and
// checks the root does not grow with the number of builds.
func TestBuildahStorageStaysFlat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg := registry.Start(t)
	b := newBuildah(t, "overlay")
	archive := writeArchive(t, t.TempDir(), 4<<20)
	var sizes []int64
	for i := 0; i < 5; i++ {
		if _, err := b.Build(ctx, Request{ArchivePath: archive, Repository: reg.Host + "/team/app", Tag: fmt.Sprintf("r%d", i), Annotations: testAnnotations(), Insecure: true}); err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		sizes = append(sizes, duBytes(t, b.Root)+duBytes(t, b.RunRoot))
	}
	t.Logf("storage root bytes after each build: %v", sizes)
	if sizes[len(sizes)-1] > sizes[0]+1<<20 {
		t.Errorf("storage grows with builds: %v", sizes)
	}
	if sizes[len(sizes)-1] > 4<<20 {
		t.Errorf("storage holds %d bytes after builds, more than one archive", sizes[len(sizes)-1])
	}
}

func duBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClassifyBuildah(t *testing.T) {
	for _, tc := range []struct {
		step, stderr string
		want         error
	}{
		{"push", `Error: pushing image "x" to "docker://127.0.0.1:1/a:b": trying to reuse blob sha256:401a at destination: checking whether a blob exists: authentication required`, ErrUnauthorized},
		{"push", `Error: ... reading manifest: unauthorized: authentication required`, ErrUnauthorized},
		{"push", `Error: ... pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`, ErrRegistryUnreachable},
		{"add", `Error: creating overlay mount to /x: no space left on device`, ErrStorage},
		{"push", `Error: copying from containers-storage:[overlay@/r] to docker://x: something`, nil},
	} {
		if got := classifyBuildah(tc.step, tc.stderr); got != tc.want {
			t.Errorf("%s %q: got %v, want %v", tc.step, tc.stderr, got, tc.want)
		}
	}
}
