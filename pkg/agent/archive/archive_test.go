package archive

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

func TestResolveRejectsEscapes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "checkpoints")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "checkpoint-db-0_ns-db-2026-11-26T07:00:00Z.tar")
	outside := filepath.Join(root, "secret.tar")
	for _, f := range []string{good, outside} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link.tar")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}

	if got, err := Resolve(dir, good); err != nil || got != good {
		t.Fatalf("good archive: %q %v", got, err)
	}
	bad := map[string]string{
		"relative":        "checkpoint.tar",
		"traversal":       dir + "/../secret.tar",
		"outside":         outside,
		"symlink out":     filepath.Join(dir, "link.tar"),
		"dir symlink out": filepath.Join(dir, "up", "secret.tar"),
		"the folder":      dir,
		"a subfolder":     filepath.Join(dir, "sub"),
		"missing":         filepath.Join(dir, "gone.tar"),
	}
	for name, p := range bad {
		if got, err := Resolve(dir, p); err == nil {
			t.Errorf("%s: %q accepted as %q", name, p, got)
		}
	}
}

func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	return p
}

func TestReadConfig(t *testing.T) {
	cfg := metadata.ContainerConfig{ID: "abc", Name: "db", RootfsImage: "docker.io/library/redis:7",
		RootfsImageRef: "sha256:0123", CheckpointedAt: time.Now().UTC()}
	raw, _ := json.Marshal(cfg)
	p := writeTar(t, map[string][]byte{
		"checkpoint/pages-1.img": make([]byte, 4096),
		"config.dump":            raw,
		"spec.dump":              []byte("{}"),
	})
	tmp := t.TempDir()
	got, err := ReadConfig(p, tmp)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "db" || got.RootfsImage != "docker.io/library/redis:7" || got.RootfsImageRef != "sha256:0123" {
		t.Fatalf("config = %+v", got)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}

	for name, files := range map[string]map[string][]byte{
		"no config.dump": {"spec.dump": []byte("{}")},
		"bad json":       {"config.dump": []byte("{not json")},
		"no name":        {"config.dump": []byte(`{"id":"x"}`)},
	} {
		if _, err := ReadConfig(writeTar(t, files), tmp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	notTar := filepath.Join(t.TempDir(), "x.tar")
	_ = os.WriteFile(notTar, []byte(strings.Repeat("garbage", 200)), 0o600)
	if _, err := ReadConfig(notTar, tmp); err == nil {
		t.Error("a non-tar accepted")
	}
}
