package stateshiftctl

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// ImageReport is what `inspect` learns from a checkpoint image: where the
// process came from, what recorded it, and how much memory it carries.
type ImageReport struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`

	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"podUID,omitempty"`
	Container string `json:"container"`

	// RootfsImage is the image the container ran; the destination pulls it
	// as well as the checkpoint image.
	RootfsImage    string    `json:"rootfsImage,omitempty"`
	Runtime        string    `json:"runtime,omitempty"`
	CheckpointedAt time.Time `json:"checkpointedAt,omitempty"`
	CRIUVersion    string    `json:"criuVersion,omitempty"`
	Kernel         string    `json:"kernel,omitempty"`
	Architecture   string    `json:"architecture,omitempty"`

	// LayerBytes is what a destination pulls; ArchiveBytes what it unpacks.
	LayerBytes      int64 `json:"layerBytes"`
	ArchiveBytes    int64 `json:"archiveBytes"`
	MemoryBytes     int64 `json:"memoryBytes"`
	RootfsDiffBytes int64 `json:"rootfsDiffBytes"`
	Files           int   `json:"files"`
}

// maxMetadataBytes bounds the JSON files read from an archive: they are a
// few KiB; a larger one is not what a runtime wrote.
const maxMetadataBytes = 1 << 20

// maxLogHeaderBytes is how much of CRIU's dump.log is read: its first lines
// name CRIU's version and the kernel, the rest is skipped.
const maxLogHeaderBytes = 8 << 10

type inspectOptions struct {
	insecure bool
	timeout  time.Duration
	output   string
}

func newInspectCommand(s *Streams) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show what a checkpoint image holds: pod, container, runtime, CRIU, kernel, sizes",
		Long: `Reads a checkpoint image from its registry (credentials from the Docker or
containers auth file, as kubectl's image tooling does) and reports the pod and
container it holds, the runtime, CRIU version and kernel that made it, and the
sizes a destination pulls and unpacks. The image's memory pages are streamed
past, never written to disk.`,
		Example: "  kubectl stateshift inspect registry.example/stateshift/shop-db@sha256:...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			var opts []name.Option
			if o.insecure {
				opts = append(opts, name.Insecure)
			}
			report, err := InspectImage(ctx, args[0], authn.DefaultKeychain, opts...)
			if err != nil {
				return err
			}
			return printImageReport(s.Out, o.output, report)
		},
	}
	cmd.Flags().BoolVar(&o.insecure, "insecure", false, "allow a registry served over plain HTTP")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// InspectImage reads the manifest and streams the single layer of a
// checkpoint image.
func InspectImage(ctx context.Context, image string, kc authn.Keychain, opts ...name.Option) (*ImageReport, error) {
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", image, err)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	r := &ImageReport{
		Image:       ref.Context().Name(),
		Digest:      desc.Digest.String(),
		Container:   m.Annotations[checkpointimage.AnnotationCRIO],
		Pod:         m.Annotations[checkpointimage.AnnotationPod],
		Namespace:   m.Annotations[checkpointimage.AnnotationNamespace],
		RootfsImage: m.Annotations[checkpointimage.AnnotationRootfsImageName],
		LayerBytes:  m.Layers[0].Size,
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	layer, err := img.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: layer: %w", ref, err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("%s: read layer: %w", ref, err)
	}
	defer func() { _ = rc.Close() }()
	if err := r.readArchive(rc); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return r, nil
}

// readArchive walks the checkpoint archive once, summing sizes and reading
// the few metadata files.
func (r *ImageReport) readArchive(stream io.Reader) error {
	tr := tar.NewReader(stream)
	sawConfig := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer is not a readable tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		r.Files++
		r.ArchiveBytes += h.Size
		file := path.Clean(strings.TrimPrefix(h.Name, "/"))
		switch {
		case file == metadata.ConfigDumpFile:
			sawConfig = true
			err = r.readConfigDump(tr)
		case file == metadata.SpecDumpFile:
			err = r.readSpecDump(tr)
		case file == metadata.DumpLogFile:
			r.readDumpLog(io.LimitReader(tr, maxLogHeaderBytes))
		case file == metadata.RootFsDiffTar:
			r.RootfsDiffBytes = h.Size
		case path.Dir(file) == metadata.CheckpointDirectory && strings.HasPrefix(path.Base(file), metadata.PagesPrefix):
			r.MemoryBytes += h.Size
		}
		if err != nil {
			return err
		}
	}
	if !sawConfig {
		return fmt.Errorf("layer has no %s: not a container checkpoint", metadata.ConfigDumpFile)
	}
	return nil
}

func (r *ImageReport) readConfigDump(in io.Reader) error {
	var cfg metadata.ContainerConfig
	if err := json.NewDecoder(io.LimitReader(in, maxMetadataBytes)).Decode(&cfg); err != nil {
		return fmt.Errorf("parse %s: %w", metadata.ConfigDumpFile, err)
	}
	r.Runtime = cfg.OCIRuntime
	r.CheckpointedAt = cfg.CheckpointedAt.UTC()
	if r.RootfsImage == "" {
		r.RootfsImage = cfg.RootfsImageName
	}
	return nil
}

// readSpecDump takes the pod's identity from the runtime's own record (the
// OCI spec's annotations), which the manifest annotations only repeat.
func (r *ImageReport) readSpecDump(in io.Reader) error {
	var s spec.Spec
	if err := json.NewDecoder(io.LimitReader(in, maxMetadataBytes)).Decode(&s); err != nil {
		return fmt.Errorf("parse %s: %w", metadata.SpecDumpFile, err)
	}
	set := func(dst *string, key string) {
		if v := s.Annotations[key]; v != "" && *dst == "" {
			*dst = v
		}
	}
	set(&r.Pod, "io.kubernetes.pod.name")
	set(&r.Namespace, "io.kubernetes.pod.namespace")
	set(&r.PodUID, "io.kubernetes.pod.uid")
	return nil
}

// readDumpLog reads CRIU's header lines:
//
//	(00.000079) Version: 4.1.1 (gitid 0)
//	(00.000122) Running on vm Linux 6.18.44 #1 SMP PREEMPT_DYNAMIC @0 x86_64
func (r *ImageReport) readDumpLog(in io.Reader) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, ") "); strings.HasPrefix(line, "(") && i > 0 {
			line = line[i+2:]
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok && r.CRIUVersion == "" {
			r.CRIUVersion, _, _ = strings.Cut(v, " ")
		}
		if v, ok := strings.CutPrefix(line, "Running on "); ok && r.Kernel == "" {
			// nodename sysname release version... machine
			f := strings.Fields(v)
			if len(f) >= 4 {
				r.Kernel = f[1] + " " + f[2]
				r.Architecture = f[len(f)-1]
			}
		}
	}
}
