package stateshiftctl

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/registry"
)

// checkpointArchive is a CRI-O-shaped checkpoint archive with memPages
// bytes of memory pages.
func checkpointArchive(t *testing.T, memPages int) []byte {
	t.Helper()
	cfg, _ := json.Marshal(metadata.ContainerConfig{
		ID: "c0ffee", Name: "db", RootfsImageName: "docker.io/library/redis:7.4", OCIRuntime: "runc",
		CheckpointedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
	})
	sp, _ := json.Marshal(spec.Spec{Annotations: map[string]string{
		"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": "1234-5678",
	}})
	log := "(00.000000) CRIU run id = x\n(00.000079) Version: 4.1.1 (gitid 0)\n" +
		"(00.000122) Running on vm Linux 6.18.44-fc #1 SMP PREEMPT_DYNAMIC @0 x86_64\n(00.1) more\n"
	files := []struct {
		name string
		body []byte
	}{
		{metadata.ConfigDumpFile, cfg},
		{metadata.SpecDumpFile, sp},
		{metadata.DumpLogFile, []byte(log)},
		{metadata.RootFsDiffTar, make([]byte, 2048)},
		{"checkpoint/inventory.img", []byte("inventory")},
		{"checkpoint/pages-1.img", make([]byte, memPages)},
		{"checkpoint/pages-2.img", make([]byte, memPages)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		must(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(f.body)
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// pushCheckpointImage pushes archive as a checkpoint image the way the
// agent's native builder lays it out: OCI manifest, one uncompressed layer,
// both detection annotations.
func pushCheckpointImage(t *testing.T, repo string, archive []byte) string {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, static.NewLayer(archive, types.OCIUncompressedLayer))
	must(t, err)
	img = mutate.Annotations(img, checkpointimage.Annotations(checkpointimage.Source{
		Container: "db", Pod: "db-0", Namespace: "shop", RootfsImage: "docker.io/library/redis:7.4",
	})).(v1.Image)
	ref, err := name.NewTag(repo+":cp", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, img, remote.WithContext(t.Context())))
	d, err := img.Digest()
	must(t, err)
	return repo + "@" + d.String()
}

func TestInspectReportsWhatTheImageHolds(t *testing.T) {
	reg := registry.Start(t)
	image := pushCheckpointImage(t, reg.Host+"/stateshift/shop-db", checkpointArchive(t, 1<<20))

	out, err := run(t, nil, "inspect", image, "--insecure", "-o", "json")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var r ImageReport
	must(t, json.Unmarshal([]byte(out), &r))
	want := ImageReport{
		Image: reg.Host + "/stateshift/shop-db", Digest: image[strings.Index(image, "@")+1:],
		Namespace: "shop", Pod: "db-0", PodUID: "1234-5678", Container: "db",
		RootfsImage: "docker.io/library/redis:7.4", Runtime: "runc",
		CheckpointedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		CRIUVersion:    "4.1.1", Kernel: "Linux 6.18.44-fc", Architecture: "x86_64",
		LayerBytes: r.LayerBytes, ArchiveBytes: r.ArchiveBytes,
		MemoryBytes: 2 << 20, RootfsDiffBytes: 2048, Files: 7,
	}
	if r != want {
		t.Errorf("report\n got %+v\nwant %+v", r, want)
	}
	if r.ArchiveBytes < 2<<20+2048 || r.LayerBytes < r.ArchiveBytes {
		t.Errorf("sizes: layer %d, archive %d", r.LayerBytes, r.ArchiveBytes)
	}

	table, err := run(t, nil, "inspect", image, "--insecure")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	for _, row := range [][2]string{{"Pod", "db-0"}, {"CRIU", "4.1.1"}, {"Memory pages", "2.0 MiB"}, {"Kernel", "Linux 6.18.44-fc"}, {"Rootfs changes", "2.0 KiB"}} {
		if !hasRow(table, row[0], row[1]) {
			t.Errorf("table lacks %s: %s:\n%s", row[0], row[1], table)
		}
	}
}

func TestInspectRefusesWhatIsNotACheckpoint(t *testing.T) {
	reg := registry.Start(t)
	ordinary, err := random.Image(512, 1)
	must(t, err)
	ref, err := name.NewTag(reg.Host+"/app/web:1", name.Insecure)
	must(t, err)
	must(t, remote.Write(ref, mutate.MediaType(ordinary, types.OCIManifestSchema1)))

	_, err = run(t, nil, "inspect", ref.String(), "--insecure")
	if err == nil || !strings.Contains(err.Error(), "not a checkpoint image") {
		t.Errorf("inspect of an ordinary image: %v, want 'not a checkpoint image'", err)
	}
	_, err = run(t, nil, "inspect", "UPPER/case::bad", "--insecure")
	if err == nil || !strings.Contains(err.Error(), "image reference") {
		t.Errorf("inspect of a bad reference: %v", err)
	}
	_, err = run(t, nil, "inspect", reg.Host+"/app/web:1", "--insecure", "-o", "toml")
	if err == nil {
		t.Error("inspect -o toml did not fail")
	}
}

// hasRow reports whether a key/value table has the row "key: value",
// whatever the alignment.
func hasRow(table, key, value string) bool {
	for _, line := range strings.Split(table, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}

// run runs the plugin with args and returns its standard output.
func run(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCommand(&Streams{In: stdin, Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
