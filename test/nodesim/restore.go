package nodesim

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// Waiting and event reasons the kubelet reports.
const (
	reasonErrImagePull        = "ErrImagePull"
	reasonInvalidImageName    = "InvalidImageName"
	reasonCreateContainerErr  = "CreateContainerError"
	messageNoCommandSpecified = "no command specified"
	// reasonPulled is the kubelet's event reason for a pulled image.
	reasonPulled = "Pulled"
)

type startResult struct {
	imageID    string // repository@sha256:...
	imageHexID string
	restored   *restoredState
	reason     string
	err        error
	// pulled is set once the image was pulled from a registry (even if the
	// container then failed to be created): what the kubelet reports in its
	// Pulled event.
	pulled *pullResult
}

// pullResult is one successful image pull.
type pullResult struct {
	image    string // as the kubelet names it: the container's image, default tag applied
	at       time.Time
	duration time.Duration
	size     int64 // bytes, config and layers as the manifest records them
}

type restoredState struct {
	state    SavedState
	config   metadata.ContainerConfig
	pagesSHA string
}

func failed(reason string, err error) startResult { return startResult{reason: reason, err: err} }

// prepareContainer does what the runtime does before a container runs: find
// the image and, if it is a checkpoint image and this runtime can restore,
// read the checkpoint the container resumes from.
func (n *Node) prepareContainer(ctx context.Context, pod *corev1.Pod, spec corev1.Container) startResult {
	ref, lookUp, err := n.reg.reference(spec.Image)
	if err != nil {
		return failed(reasonInvalidImageName, fmt.Errorf("Failed to apply default image tag %q: %w", spec.Image, err))
	}
	if !lookUp {
		// Not from a registry this runtime pulls from: an ordinary image,
		// "present" without network.
		hexID := imageIDFor(spec.Image)
		return startResult{imageID: ref.Context().Name() + "@sha256:" + hexID, imageHexID: hexID}
	}
	pullStart := time.Now()
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(n.pullKeychain(ctx, pod)))
	if err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: %w", spec.Image, err))
	}
	manifestAt := time.Now()
	res := startResult{imageID: ref.Context().Name() + "@" + desc.Digest.String(), imageHexID: desc.Digest.Hex}
	// pulledAt records a pull that ended at t. Unless the runtime restores,
	// the simulated pull is the manifest: nothing reads the layers. An index
	// is not reported: the simulator never resolves its platform image, so
	// it knows no size to report.
	pulledAt := func(t time.Time) {
		if size, ok := imageSize(desc); ok {
			res.pulled = &pullResult{image: withDefaultTag(spec.Image), at: t, duration: t.Sub(pullStart), size: size}
		}
	}
	// failAfterPull: the pull succeeded, the container could not be created.
	failAfterPull := func(reason string, err error) startResult {
		res.reason, res.err = reason, err
		return res
	}
	// CRI-O only looks for the annotation on a single OCI image manifest;
	// anything else (an index, Docker v2s2) is an ordinary image.
	if desc.MediaType != types.OCIManifestSchema1 {
		pulledAt(manifestAt)
		return res
	}
	var probe struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(desc.Manifest, &probe); err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: manifest: %w", spec.Image, err))
	}
	if _, ok := probe.Annotations[checkpointimage.AnnotationCRIO]; !ok {
		pulledAt(manifestAt)
		return res
	}
	if n.cfg.RestoreMode == CannotRestore {
		// The runtime does not know checkpoint images: it creates a container
		// from an image with no rootfs and no command, and fails as CRI-O does.
		pulledAt(manifestAt)
		if len(spec.Command) == 0 && len(spec.Args) == 0 {
			return failAfterPull(reasonCreateContainerErr, errors.New(messageNoCommandSpecified))
		}
		cmd := append(slices.Clone(spec.Command), spec.Args...)
		return failAfterPull(reasonCreateContainerErr, fmt.Errorf("container create failed: exec: %q: executable file not found in $PATH", cmd[0]))
	}
	m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, "")
	if err != nil {
		pulledAt(manifestAt)
		return failAfterPull(reasonCreateContainerErr, fmt.Errorf("failed to restore container %s from %q: %w", spec.Name, spec.Image, err))
	}
	img, err := desc.Image()
	if err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: %w", spec.Image, err))
	}
	// The pull of a checkpoint image ends once its layer is read; what the
	// runtime does with it afterwards is the restore proper.
	layer, err := readCheckpointLayer(img)
	if err != nil {
		reason := reasonCreateContainerErr
		var pe *pullError
		if errors.As(err, &pe) {
			reason = reasonErrImagePull
		}
		return failed(reason, fmt.Errorf("failed to restore container %s from %q: %w", spec.Name, spec.Image, err))
	}
	pulledAt(time.Now())
	restored, err := layer.check(m)
	if err != nil {
		return failAfterPull(reasonCreateContainerErr, fmt.Errorf("failed to restore container %s from %q: %w", spec.Name, spec.Image, err))
	}
	if err := checkBindMounts(restored.spec, spec, spec.Image); err != nil {
		return failAfterPull(reasonCreateContainerErr, fmt.Errorf("failed to restore container %s: %w", spec.Name, err))
	}
	res.restored = &restoredState{state: restored.state, config: restored.config, pagesSHA: restored.pagesSHA}
	return res
}

// withDefaultTag names an image as the kubelet does in its events: ":latest"
// is added to a reference with neither tag nor digest.
func withDefaultTag(image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	if !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
		return image + ":latest"
	}
	return image
}

// imageSize is the size of an image as its manifest records it (config and
// layers); false for an index or a manifest that does not parse.
func imageSize(desc *remote.Descriptor) (int64, bool) {
	if !desc.MediaType.IsImage() {
		return 0, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return 0, false
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, true
}

// pullError marks a failure to fetch the layer, not a bad checkpoint.
type pullError struct{ err error }

func (e *pullError) Error() string { return e.err.Error() }
func (e *pullError) Unwrap() error { return e.err }

// pullReader turns read errors of the layer stream into pullErrors.
type pullReader struct{ r io.Reader }

func (p pullReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		err = &pullError{err}
	}
	return n, err
}

type checkpointContent struct {
	config   metadata.ContainerConfig
	spec     specs.Spec
	state    SavedState
	pagesSHA string
}

// checkpointLayer is what readCheckpointLayer found in the layer.
type checkpointLayer struct {
	out                          checkpointContent
	haveConfig, haveSpec, haveCP bool
	haveState, havePages         bool
	pagesBytes                   int64
}

// readCheckpointLayer streams the image's single layer once (the pull): it
// parses config.dump, spec.dump and the saved state and hashes the memory
// without holding it. check then does the runtime's part.
func readCheckpointLayer(img v1.Image) (*checkpointLayer, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, &pullError{fmt.Errorf("layers: %w", err)}
	}
	if len(layers) != 1 {
		return nil, fmt.Errorf("checkpoint image has %d layers, expected 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, &pullError{fmt.Errorf("fetch layer: %w", err)}
	}
	defer rc.Close()

	var l checkpointLayer
	tr := tar.NewReader(pullReader{rc})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *pullError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, fmt.Errorf("layer is not a tar archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/"))
		if name == metadata.CheckpointDirectory || strings.HasPrefix(name, metadata.CheckpointDirectory+"/") {
			l.haveCP = true
		}
		readJSON := func(v any) error {
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(data, v); err != nil {
				return fmt.Errorf("parse %s: %w", name, err)
			}
			return nil
		}
		switch name {
		case metadata.ConfigDumpFile:
			l.haveConfig = true
			err = readJSON(&l.out.config)
		case metadata.SpecDumpFile:
			l.haveSpec = true
			err = readJSON(&l.out.spec)
		case StateFile:
			l.haveState = true
			err = readJSON(&l.out.state)
		case PagesFile:
			l.havePages = true
			h := sha256.New()
			l.pagesBytes, err = io.Copy(h, tr)
			l.out.pagesSHA = hex.EncodeToString(h.Sum(nil))
		}
		if err != nil {
			return nil, err
		}
	}
	return &l, nil
}

// check does what CRI-O checks before it restores, plus that the memory is
// the one the state describes (the simulator's restore of the memory).
func (l *checkpointLayer) check(m *v1.Manifest) (*checkpointContent, error) {
	out := &l.out
	// The order and words of CRI-O's own checks.
	switch {
	case !l.haveConfig:
		return nil, fmt.Errorf("failed to read %q: no such file in checkpoint image", metadata.ConfigDumpFile)
	case !l.haveSpec:
		return nil, fmt.Errorf("failed to read %q: no such file in checkpoint image", metadata.SpecDumpFile)
	case !l.haveCP:
		return nil, fmt.Errorf("checkpoint image lacks the %s/ directory of CRIU images", metadata.CheckpointDirectory)
	case !l.haveState || !l.havePages:
		return nil, fmt.Errorf("checkpoint image lacks %s or %s: not made by a node this simulator can restore", StateFile, PagesFile)
	}
	// CRI-O 1.34 only needs the checkpoint.name annotation to be there
	// (that is how it tells a checkpoint image); it never compares it with
	// the name in config.dump, which is CRI-O's own k8s_... name.
	if l.pagesBytes != out.state.MemoryBytes || out.pagesSHA != out.state.MemorySHA256 {
		return nil, fmt.Errorf("memory image is corrupt: %d bytes sha256 %s, state records %d bytes sha256 %s",
			l.pagesBytes, out.pagesSHA, out.state.MemoryBytes, out.state.MemorySHA256)
	}
	if want := MemorySHA256(out.state.Seed, out.state.Counter, out.state.MemoryBytes); want != out.pagesSHA {
		return nil, fmt.Errorf("memory image does not hold the state of counter %d (sha256 %s, expected %s)", out.state.Counter, out.pagesSHA, want)
	}
	return out, nil
}

// ignoredMounts are set up anew for every container, so CRI-O does not ask
// the new pod for them.
var ignoredMounts = map[string]bool{
	"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true, "/dev/shm": true,
	"/run/.containerenv": true, "/run/secrets": true,
}

// checkBindMounts refuses a restore whose checkpointed bind mounts are not
// all mounted at the same paths in the new container, as CRI-O does.
func checkBindMounts(saved specs.Spec, c corev1.Container, image string) error {
	have := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		have[path.Clean(vm.MountPath)] = true
	}
	tml := c.TerminationMessagePath
	if tml == "" {
		tml = corev1.TerminationMessagePathDefault
	}
	have[tml] = true
	var missing []string
	for _, m := range saved.Mounts {
		dst := path.Clean(m.Destination)
		if !isBind(m) || ignoredMounts[dst] || have[dst] {
			continue
		}
		missing = append(missing, dst)
	}
	if len(missing) > 0 {
		return fmt.Errorf("restoring %q expects following bind mounts defined (%s)", image, strings.Join(missing, ","))
	}
	return nil
}
