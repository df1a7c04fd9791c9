package nodesim

import (
	"archive/tar"
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

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// Waiting reasons the kubelet reports.
const (
	reasonErrImagePull        = "ErrImagePull"
	reasonInvalidImageName    = "InvalidImageName"
	reasonCreateContainerErr  = "CreateContainerError"
	messageNoCommandSpecified = "no command specified"
)

type startResult struct {
	imageID    string // repository@sha256:...
	imageHexID string
	restored   *restoredState
	reason     string
	err        error
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
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(n.reg.keychain))
	if err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: %w", spec.Image, err))
	}
	res := startResult{imageID: ref.Context().Name() + "@" + desc.Digest.String(), imageHexID: desc.Digest.Hex}
	// CRI-O only looks for the annotation on a single OCI image manifest;
	// anything else (an index, Docker v2s2) is an ordinary image.
	if desc.MediaType != types.OCIManifestSchema1 {
		return res
	}
	var probe struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(desc.Manifest, &probe); err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: manifest: %w", spec.Image, err))
	}
	if _, ok := probe.Annotations[checkpointimage.AnnotationCRIO]; !ok {
		return res
	}
	if n.cfg.RestoreMode == CannotRestore {
		// The runtime does not know checkpoint images: it creates a container
		// from an image with no rootfs and no command, and fails as CRI-O does.
		if len(spec.Command) == 0 && len(spec.Args) == 0 {
			return failed(reasonCreateContainerErr, errors.New(messageNoCommandSpecified))
		}
		cmd := append(slices.Clone(spec.Command), spec.Args...)
		return failed(reasonCreateContainerErr, fmt.Errorf("container create failed: exec: %q: executable file not found in $PATH", cmd[0]))
	}
	m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, "")
	if err != nil {
		return failed(reasonCreateContainerErr, fmt.Errorf("failed to restore container %s from %q: %w", spec.Name, spec.Image, err))
	}
	img, err := desc.Image()
	if err != nil {
		return failed(reasonErrImagePull, fmt.Errorf("failed to pull image %q: %w", spec.Image, err))
	}
	restored, err := readCheckpointImage(img, m)
	if err != nil {
		reason := reasonCreateContainerErr
		var pe *pullError
		if errors.As(err, &pe) {
			reason = reasonErrImagePull
		}
		return failed(reason, fmt.Errorf("failed to restore container %s from %q: %w", spec.Name, spec.Image, err))
	}
	if err := checkBindMounts(restored.spec, spec, spec.Image); err != nil {
		return failed(reasonCreateContainerErr, fmt.Errorf("failed to restore container %s: %w", spec.Name, err))
	}
	res.restored = &restoredState{state: restored.state, config: restored.config, pagesSHA: restored.pagesSHA}
	return res
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

// readCheckpointImage streams the image's single layer once: it parses
// config.dump, spec.dump and the saved state and hashes the memory without
// holding it, then checks what CRI-O checks plus that the memory is the one
// the state describes.
func readCheckpointImage(img v1.Image, m *v1.Manifest) (*checkpointContent, error) {
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

	var (
		out                          checkpointContent
		haveConfig, haveSpec, haveCP bool
		haveState, havePages         bool
		pagesBytes                   int64
	)
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
			haveCP = true
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
			haveConfig = true
			err = readJSON(&out.config)
		case metadata.SpecDumpFile:
			haveSpec = true
			err = readJSON(&out.spec)
		case StateFile:
			haveState = true
			err = readJSON(&out.state)
		case PagesFile:
			havePages = true
			h := sha256.New()
			pagesBytes, err = io.Copy(h, tr)
			out.pagesSHA = hex.EncodeToString(h.Sum(nil))
		}
		if err != nil {
			return nil, err
		}
	}
	// The order and words of CRI-O's own checks.
	switch {
	case !haveConfig:
		return nil, fmt.Errorf("failed to read %q: no such file in checkpoint image", metadata.ConfigDumpFile)
	case !haveSpec:
		return nil, fmt.Errorf("failed to read %q: no such file in checkpoint image", metadata.SpecDumpFile)
	case !haveCP:
		return nil, fmt.Errorf("checkpoint image lacks the %s/ directory of CRIU images", metadata.CheckpointDirectory)
	case !haveState || !havePages:
		return nil, fmt.Errorf("checkpoint image lacks %s or %s: not made by a node this simulator can restore", StateFile, PagesFile)
	}
	if want := m.Annotations[checkpointimage.AnnotationCRIO]; out.config.Name != want {
		return nil, fmt.Errorf("annotation %s=%q does not name the checkpointed container %q", checkpointimage.AnnotationCRIO, want, out.config.Name)
	}
	if pagesBytes != out.state.MemoryBytes || out.pagesSHA != out.state.MemorySHA256 {
		return nil, fmt.Errorf("memory image is corrupt: %d bytes sha256 %s, state records %d bytes sha256 %s",
			pagesBytes, out.pagesSHA, out.state.MemoryBytes, out.state.MemorySHA256)
	}
	if want := MemorySHA256(out.state.Seed, out.state.Counter, out.state.MemoryBytes); want != out.pagesSHA {
		return nil, fmt.Errorf("memory image does not hold the state of counter %d (sha256 %s, expected %s)", out.state.Counter, out.pagesSHA, want)
	}
	return &out, nil
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
