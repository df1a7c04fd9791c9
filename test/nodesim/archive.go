package nodesim

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Names inside an archive beyond checkpointctl's constants.
const (
	// BindMountsFile lists the container's external bind mounts (CRI-O).
	BindMountsFile = "bind.mounts"
	// LogPathFile is the container's log, which CRI-O adds to every archive
	// under the name of its log-path annotation.
	LogPathFile = "io.kubernetes.cri-o.LogPath"
	// StatsDumpFile is CRIU's dump statistics image.
	StatsDumpFile = "stats-dump"
	// PagesFile holds the container's memory, as CRIU's pages-1.img does.
	PagesFile = metadata.CheckpointDirectory + "/" + metadata.PagesPrefix + "1.img"
	// StateFile records the simulated state, next to the CRIU images.
	StateFile = metadata.CheckpointDirectory + "/nodesim-state.json"
)

// Annotations the runtime puts into spec.dump (the keys CRI-O uses).
const (
	annotationPodName       = "io.kubernetes.pod.name"
	annotationPodNamespace  = "io.kubernetes.pod.namespace"
	annotationPodUID        = "io.kubernetes.pod.uid"
	annotationContainerName = "io.kubernetes.container.name"
)

// crioContainerName is the name CRI-O records in config.dump: the
// kubelet's k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt> (seen
// in a real node's archive), or the bare container name when the archive
// is written for no pod (unit tests).
func crioContainerName(spec ArchiveSpec) string {
	if spec.Pod == "" {
		return spec.Container
	}
	return fmt.Sprintf("k8s_%s_%s_%s_%s_0", spec.Container, spec.Pod, spec.Namespace, spec.PodUID)
}

// crioImageName is the image name CRI-O records in config.dump: a
// reference with both a tag and a digest loses its tag (seen on a real
// node: repo:v1@sha256:... became repo@sha256:...).
func crioImageName(image string) string {
	repoTag, digest, ok := strings.Cut(image, "@")
	if !ok {
		return image
	}
	if i := strings.LastIndex(repoTag, ":"); i > strings.LastIndex(repoTag, "/") {
		repoTag = repoTag[:i]
	}
	return repoTag + "@" + digest
}

// ArchiveSpec describes the container an archive is written for.
type ArchiveSpec struct {
	Namespace, Pod, PodUID, Container string
	// ContainerID is the runtime's 64-hex id; derived from Seed when empty.
	ContainerID string
	// Image is the image the pod asked for (RootfsImage, RootfsImageName).
	Image string
	// ImageID is the 64-hex image id (RootfsImageRef); derived from Image when empty.
	ImageID string
	// Command is the process recorded in spec.dump.
	Command []string
	// Created is when the container was created; CheckpointedAt when it was
	// dumped (now when zero).
	Created, CheckpointedAt time.Time
	// Seed, Counter and MemoryBytes define the simulated state (see MemoryReader).
	Seed, Counter uint64
	MemoryBytes   int64
	// Mounts are the container's volume bind mounts, recorded in spec.dump and
	// bind.mounts; a restore needs each destination again.
	Mounts []specs.Mount
	// RestoredAt is set when the container itself was restored.
	RestoredAt time.Time
}

// SavedState is checkpoint/nodesim-state.json: what a restore resumes from.
type SavedState struct {
	Namespace      string    `json:"namespace"`
	Pod            string    `json:"pod"`
	PodUID         string    `json:"podUID"`
	Container      string    `json:"container"`
	Seed           uint64    `json:"seed"`
	Counter        uint64    `json:"counter"`
	MemoryBytes    int64     `json:"memoryBytes"`
	MemorySHA256   string    `json:"memorySHA256"`
	CheckpointedAt time.Time `json:"checkpointedAt"`
}

// ArchiveInfo is what WriteArchive wrote.
type ArchiveInfo struct {
	// Size is the number of bytes of the tar stream.
	Size int64
	// MemorySHA256 is the sha256 of checkpoint/pages-1.img.
	MemorySHA256 string
	State        SavedState
}

// WriteArchive streams an uncompressed checkpoint archive in CRI-O's layout to
// w. The memory is generated while it is written, so a 1 GiB archive costs no
// more RAM than a small one. Benchmarks call it directly, without a cluster.
func WriteArchive(w io.Writer, spec ArchiveSpec) (ArchiveInfo, error) {
	if spec.Container == "" {
		return ArchiveInfo{}, fmt.Errorf("write archive: container name is empty")
	}
	if spec.MemoryBytes < 0 {
		return ArchiveInfo{}, fmt.Errorf("write archive: memory size %d is negative", spec.MemoryBytes)
	}
	if spec.CheckpointedAt.IsZero() {
		spec.CheckpointedAt = time.Now()
	}
	if spec.Created.IsZero() {
		spec.Created = spec.CheckpointedAt
	}
	if spec.ContainerID == "" {
		spec.ContainerID = containerID(spec.Seed, 0)
	}
	if spec.ImageID == "" {
		spec.ImageID = imageIDFor(spec.Image)
	}
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	a := &archiveWriter{tw: tw, mtime: spec.CheckpointedAt}

	a.dir(metadata.CheckpointDirectory)
	a.file(metadata.CheckpointDirectory+"/inventory.img", criuInventory())
	a.file(metadata.CheckpointDirectory+"/pstree.img", criuPstree())
	a.file(metadata.CheckpointDirectory+"/pagemap-1.img", criuPagemap(spec.MemoryBytes))

	// The memory: streamed and hashed in one pass.
	h := sha256.New()
	if a.err == nil {
		a.err = tw.WriteHeader(a.header(PagesFile, spec.MemoryBytes))
	}
	if a.err == nil {
		buf := make([]byte, 1<<20)
		_, a.err = io.CopyBuffer(io.MultiWriter(tw, h), MemoryReader(spec.Seed, spec.Counter, spec.MemoryBytes), buf)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	state := SavedState{
		Namespace: spec.Namespace, Pod: spec.Pod, PodUID: spec.PodUID, Container: spec.Container,
		Seed: spec.Seed, Counter: spec.Counter, MemoryBytes: spec.MemoryBytes, MemorySHA256: sum,
		CheckpointedAt: spec.CheckpointedAt.UTC(),
	}
	a.json(StateFile, state)

	a.json(metadata.ConfigDumpFile, metadata.ContainerConfig{
		ID:              spec.ContainerID,
		Name:            crioContainerName(spec),
		RootfsImage:     spec.Image,
		RootfsImageRef:  spec.ImageID,
		RootfsImageName: crioImageName(spec.Image),
		OCIRuntime:      "runc",
		CreatedTime:     spec.Created,
		CheckpointedAt:  spec.CheckpointedAt,
		RestoredAt:      spec.RestoredAt,
		Restored:        !spec.RestoredAt.IsZero(),
	})
	a.json(metadata.SpecDumpFile, runtimeSpec(spec))
	binds := []specs.Mount{}
	for _, m := range spec.Mounts {
		if isBind(m) {
			binds = append(binds, m)
		}
	}
	a.json(BindMountsFile, binds)
	pages := uint64((spec.MemoryBytes + pageSize - 1) / pageSize)
	a.file(StatsDumpFile, criuStats(120000, uint64(spec.MemoryBytes/1000+1), pages))
	a.file(metadata.DumpLogFile, []byte(fmt.Sprintf(
		"(00.000000) Version: 3.19 (gitid 0)\n(00.000100) nodesim: dumping container %s of %s/%s at counter %d\n(00.120000) Dumping finished successfully\n",
		spec.Container, spec.Namespace, spec.Pod, spec.Counter)))
	a.file(metadata.RootFsDiffTar, emptyTar())
	// CRI-O writes deleted.files only when files were deleted (none here),
	// and always adds the container's log under the name of its annotation.
	a.file(LogPathFile, []byte(fmt.Sprintf("%s stdout F nodesim: container %s started\n",
		spec.Created.UTC().Format(time.RFC3339Nano), spec.Container)))
	if a.err == nil {
		a.err = tw.Close()
	}
	if a.err != nil {
		return ArchiveInfo{}, fmt.Errorf("write archive of %s/%s/%s: %w", spec.Namespace, spec.Pod, spec.Container, a.err)
	}
	return ArchiveInfo{Size: cw.n, MemorySHA256: sum, State: state}, nil
}

// runtimeSpec is the OCI spec CRI-O would have saved as spec.dump: the
// Kubernetes annotations, the process, and the mounts (standard ones plus the
// pod's volumes).
func runtimeSpec(spec ArchiveSpec) *specs.Spec {
	args := spec.Command
	if len(args) == 0 {
		args = []string{"/nodesim-workload"}
	}
	podDir := path.Join("/var/lib/kubelet/pods", spec.PodUID)
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/dev/shm", Type: "bind", Source: "/run/containers/storage/overlay-containers/" + spec.ContainerID + "/userdata/shm", Options: []string{"rw", "bind"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: "/run/containers/storage/overlay-containers/" + spec.ContainerID + "/userdata/resolv.conf", Options: []string{"rw", "bind", "nodev", "nosuid", "noexec"}},
		{Destination: "/etc/hostname", Type: "bind", Source: "/run/containers/storage/overlay-containers/" + spec.ContainerID + "/userdata/hostname", Options: []string{"rw", "bind"}},
		{Destination: "/etc/hosts", Type: "bind", Source: path.Join(podDir, "etc-hosts"), Options: []string{"rw", "rbind", "rprivate", "bind"}},
		{Destination: "/dev/termination-log", Type: "bind", Source: path.Join(podDir, "containers", spec.Container, "0"), Options: []string{"rw", "rbind", "rprivate", "bind"}},
	}
	mounts = append(mounts, spec.Mounts...)
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: spec.Pod,
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + spec.Pod},
			Cwd:  "/",
		},
		Root:   &specs.Root{Path: "/var/lib/containers/storage/overlay/" + spec.ContainerID + "/merged"},
		Mounts: mounts,
		Annotations: map[string]string{
			annotationPodName:                   spec.Pod,
			annotationPodNamespace:              spec.Namespace,
			annotationPodUID:                    spec.PodUID,
			annotationContainerName:             spec.Container,
			"io.kubernetes.cri-o.ContainerID":   spec.ContainerID,
			"io.kubernetes.cri-o.Image":         spec.ImageID,
			"io.kubernetes.cri-o.ImageName":     spec.Image,
			"io.kubernetes.cri-o.ContainerType": "container",
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}},
		},
	}
}

func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// archiveWriter keeps the first error so the layout above reads as a list.
type archiveWriter struct {
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func (a *archiveWriter) header(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: a.mtime, Format: tar.FormatPAX}
}

func (a *archiveWriter) dir(name string) {
	if a.err != nil {
		return
	}
	a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: a.mtime, Format: tar.FormatPAX})
}

func (a *archiveWriter) file(name string, data []byte) {
	if a.err != nil {
		return
	}
	if a.err = a.tw.WriteHeader(a.header(name, int64(len(data)))); a.err == nil {
		_, a.err = a.tw.Write(data)
	}
}

func (a *archiveWriter) json(name string, v any) {
	if a.err != nil {
		return
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		a.err = fmt.Errorf("encode %s: %w", name, err)
		return
	}
	a.file(name, data)
}

func emptyTar() []byte {
	var b bytesBuffer
	_ = tar.NewWriter(&b).Close()
	return b
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// containerID derives a stable 64-hex runtime id for a container.
func containerID(seed uint64, attempt int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "nodesim-container/%d/%d", seed, attempt))
	return hex.EncodeToString(sum[:])
}

// imageIDFor is the 64-hex image id of an image the simulator never pulled:
// stable per name, like a runtime's local image id.
func imageIDFor(image string) string {
	sum := sha256.Sum256([]byte("nodesim-image/" + image))
	return hex.EncodeToString(sum[:])
}
