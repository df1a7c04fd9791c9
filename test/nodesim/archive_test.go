package nodesim

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// extractArchive unpacks a tar into a new folder and returns the folder and
// the entry names in order.
func extractArchive(t *testing.T, r io.Reader) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(r)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return dir, names
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		names = append(names, hdr.Name)
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if hdr.Mode&0o077 != 0 {
			t.Errorf("%s has mode %o: archive files must be private", hdr.Name, hdr.Mode)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
}

// checkArchiveLayout reads an extracted archive with checkpointctl's library
// and returns its saved state.
func checkArchiveLayout(t *testing.T, dir string, names []string, ns, pod, ctr, image string) SavedState {
	t.Helper()
	for _, want := range []string{"checkpoint/", "checkpoint/inventory.img", "checkpoint/pstree.img", PagesFile, StateFile,
		metadata.ConfigDumpFile, metadata.SpecDumpFile, BindMountsFile, StatsDumpFile, metadata.DumpLogFile,
		metadata.RootFsDiffTar, LogPathFile} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %s (has %v)", want, names)
		}
	}
	cfg, _, err := metadata.ReadContainerCheckpointConfigDump(dir)
	if err != nil {
		t.Fatalf("checkpointctl reads config.dump: %v", err)
	}
	// CRI-O's own name for the container, as a real node's archive has it.
	if !strings.HasPrefix(cfg.Name, "k8s_"+ctr+"_"+pod+"_"+ns+"_") || cfg.RootfsImage != image || cfg.RootfsImageName != image || len(cfg.RootfsImageRef) != 64 || len(cfg.ID) != 64 {
		t.Errorf("config.dump = %+v", cfg)
	}
	if cfg.CheckpointedAt.IsZero() || cfg.CreatedTime.IsZero() {
		t.Errorf("config.dump times missing: %+v", cfg)
	}
	spec, _, err := metadata.ReadContainerCheckpointSpecDump(dir)
	if err != nil {
		t.Fatalf("checkpointctl reads spec.dump: %v", err)
	}
	for k, v := range map[string]string{
		"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": ns, "io.kubernetes.container.name": ctr,
	} {
		if spec.Annotations[k] != v {
			t.Errorf("spec.dump annotation %s = %q, want %q", k, spec.Annotations[k], v)
		}
	}
	if spec.Annotations["io.kubernetes.pod.uid"] == "" {
		t.Error("spec.dump lacks the pod uid")
	}
	// CRI-O writes deleted.files only when the container deleted files.
	if _, err := os.Stat(filepath.Join(dir, metadata.DeletedFilesFile)); !os.IsNotExist(err) {
		t.Errorf("deleted.files present (%v): a container that deleted nothing has none", err)
	}
	var state SavedState
	if _, err := metadata.ReadJSONFile(&state, dir, StateFile); err != nil {
		t.Fatalf("state file: %v", err)
	}
	pages, err := os.ReadFile(filepath.Join(dir, PagesFile))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(pages)) != state.MemoryBytes || MemorySHA256(state.Seed, state.Counter, state.MemoryBytes) != state.MemorySHA256 {
		t.Errorf("pages-1.img (%d bytes) does not match the state %+v", len(pages), state)
	}
	if len(pages) >= 32 && binary.LittleEndian.Uint64(pages[24:]) != state.Counter {
		t.Errorf("memory header counter %d, state counter %d", binary.LittleEndian.Uint64(pages[24:]), state.Counter)
	}
	stats, err := os.ReadFile(filepath.Join(dir, StatsDumpFile))
	if err != nil || len(stats) < 12 || binary.LittleEndian.Uint32(stats) != criuImgServiceMagic || binary.LittleEndian.Uint32(stats[4:]) != criuStatsMagic ||
		int(binary.LittleEndian.Uint32(stats[8:])) != len(stats)-12 {
		t.Errorf("stats-dump is not a CRIU stats image: % x", stats)
	}
	var binds []specs.Mount
	if _, err := metadata.ReadJSONFile(&binds, dir, BindMountsFile); err != nil {
		t.Errorf("bind.mounts: %v", err)
	}
	return state
}

func TestWriteArchiveLayout(t *testing.T) {
	var buf bytes.Buffer
	spec := ArchiveSpec{
		Namespace: "ns1", Pod: "web", PodUID: "uid-1", Container: "app", Image: "registry.example/app:1",
		Seed: 99, Counter: 1234, MemoryBytes: 100_000,
		Mounts: []specs.Mount{{Destination: "/data", Type: "bind", Source: "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/data", Options: []string{"rbind"}}},
	}
	info, err := WriteArchive(&buf, spec)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(buf.Len()) || info.State.Counter != 1234 || info.MemorySHA256 != MemorySHA256(99, 1234, 100_000) {
		t.Errorf("info = %+v (buffer %d bytes)", info, buf.Len())
	}
	dir, names := extractArchive(t, &buf)
	state := checkArchiveLayout(t, dir, names, "ns1", "web", "app", "registry.example/app:1")
	if state.Counter != 1234 || state.Seed != 99 || state.MemoryBytes != 100_000 {
		t.Errorf("state = %+v", state)
	}
	var binds []specs.Mount
	if _, err := metadata.ReadJSONFile(&binds, dir, BindMountsFile); err != nil || len(binds) != 1 || binds[0].Destination != "/data" {
		t.Errorf("bind.mounts = %+v, %v", binds, err)
	}
	spec2, _, _ := metadata.ReadContainerCheckpointSpecDump(dir)
	if !slices.ContainsFunc(spec2.Mounts, func(m specs.Mount) bool { return m.Destination == "/data" }) {
		t.Errorf("spec.dump lacks the volume mount: %+v", spec2.Mounts)
	}

	if _, err := WriteArchive(io.Discard, ArchiveSpec{}); err == nil {
		t.Error("an archive without container name was written")
	}
	if _, err := WriteArchive(io.Discard, ArchiveSpec{Container: "c", MemoryBytes: -1}); err == nil {
		t.Error("an archive with negative memory was written")
	}
}

// TestWriteArchiveStreams writes a 256 MiB archive and checks the heap does
// not grow with it.
func TestWriteArchiveStreams(t *testing.T) {
	const size = 256 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	done := make(chan struct{})
	peakc := make(chan uint64)
	go func() {
		var peak uint64
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(20 * time.Millisecond):
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	info, err := WriteArchive(io.Discard, ArchiveSpec{Container: "big", Seed: 1, Counter: 2, MemoryBytes: size})
	close(done)
	peak := <-peakc
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if info.Size < size {
		t.Errorf("archive of %d bytes for %d bytes of memory", info.Size, size)
	}
	if peak > before.HeapInuse+64<<20 {
		t.Errorf("heap grew to %d MiB while writing a %d MiB archive", peak>>20, size>>20)
	}
	t.Logf("256 MiB archive in %s, heap in use %d MiB", time.Since(start), peak>>20)
}

// BenchmarkWriteArchive200MiB measures the archive writer alone (no disk).
func BenchmarkWriteArchive200MiB(b *testing.B) {
	b.SetBytes(200 << 20)
	for i := 0; b.Loop(); i++ {
		if _, err := WriteArchive(io.Discard, ArchiveSpec{Container: "bench", Seed: 1, Counter: uint64(i), MemoryBytes: 200 << 20}); err != nil {
			b.Fatal(err)
		}
	}
}
