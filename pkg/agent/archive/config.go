package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// maxDumpBytes bounds config.dump: it is a few KiB of JSON; a larger one is
// not a checkpoint archive.
const maxDumpBytes = 1 << 20

// ReadConfig reads config.dump from an archive with checkpointctl's reader,
// which works on an extracted folder: only config.dump is extracted, into a
// private temporary folder under tmpDir that is removed before returning.
// The archive's memory pages are streamed past, never held.
func ReadConfig(archivePath, tmpDir string) (*metadata.ContainerConfig, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer func() { _ = f.Close() }()

	dir, err := os.MkdirTemp(tmpDir, "config-dump-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("archive %s has no %s: not a container checkpoint", filepath.Base(archivePath), metadata.ConfigDumpFile)
		}
		if err != nil {
			return nil, fmt.Errorf("archive %s is not a readable tar: %w", filepath.Base(archivePath), err)
		}
		if filepath.Clean(h.Name) != metadata.ConfigDumpFile || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxDumpBytes {
			return nil, fmt.Errorf("%s in %s is %d bytes, more than %d", metadata.ConfigDumpFile, filepath.Base(archivePath), h.Size, maxDumpBytes)
		}
		out, err := os.OpenFile(filepath.Join(dir, metadata.ConfigDumpFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(out, io.LimitReader(tr, maxDumpBytes))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w", metadata.ConfigDumpFile, err)
		}
		cfg, _, err := metadata.ReadContainerCheckpointConfigDump(dir)
		if err != nil {
			return nil, fmt.Errorf("parse %s of %s: %w", metadata.ConfigDumpFile, filepath.Base(archivePath), err)
		}
		if cfg.Name == "" {
			return nil, fmt.Errorf("%s of %s names no container", metadata.ConfigDumpFile, filepath.Base(archivePath))
		}
		return cfg, nil
	}
}
