package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stateshift/stateshift/pkg/agent/builder"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// bench pushes one archive with one backend and times it.
type bench struct {
	ctx     context.Context
	host    string
	buildah *builder.Buildah
	native  *builder.Native
}

func newBench(ctx context.Context, host, dir, driver string) *bench {
	return &bench{
		ctx:  ctx,
		host: host,
		buildah: &builder.Buildah{
			Root:          filepath.Join(dir, "buildah", "root"),
			RunRoot:       filepath.Join(dir, "buildah", "runroot"),
			StorageDriver: driver,
			TmpDir:        dir,
		},
		native: builder.NewNative(),
	}
}

// push times one backend; the image is verified by digest afterwards,
// outside the timed part, so a fast wrong answer cannot win.
func (b *bench) push(backend, archive, tag string) (time.Duration, error) {
	repo := b.host + "/bench/" + backend
	req := builder.Request{
		ArchivePath: archive,
		Repository:  repo,
		Tag:         tag,
		Annotations: checkpointimage.Annotations(checkpointimage.Source{Container: "web"}),
		Insecure:    true,
	}
	start := time.Now()
	var (
		digest string
		err    error
	)
	switch backend {
	case "buildah":
		var res builder.Result
		res, err = b.buildah.Build(b.ctx, req)
		digest = res.Digest
	case "native":
		var res builder.Result
		res, err = b.native.Build(b.ctx, req)
		digest = res.Digest
	case "raw":
		digest, err = rawUpload(b.ctx, b.host, "bench/raw", tag, archive, req.Annotations)
	default:
		return 0, fmt.Errorf("unknown backend %q", backend)
	}
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if _, err := checkpointimage.Verify(b.ctx, repo, digest, "web", nil, name.Insecure); err != nil {
		return 0, fmt.Errorf("verify %s: %w", backend, err)
	}
	if backend == "buildah" {
		if err := emptyStorage(b.buildah); err != nil {
			return 0, err
		}
	}
	return d, nil
}

// emptyStorage reports what a buildah build left in its storage root.
func emptyStorage(b *builder.Buildah) error {
	var n int64
	_ = filepath.Walk(b.Root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "buildah storage root holds %d bytes of files after the build\n", n)
	return nil
}
