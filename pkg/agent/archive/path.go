// Package archive checks and reads the checkpoint archives the kubelet writes
// on the node: where they may be, and what container they hold.
package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Resolve returns the archive's real path after checking that it names a
// regular file inside dir, with no ".." escapes and no symlink anywhere that
// leads out of dir. The kubelet's answer is trusted no further than that: a
// compromised or buggy node must not make the agent read, push or delete
// files elsewhere.
func Resolve(dir, path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("archive path %q is not absolute", path)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("checkpoint folder %s: %w", dir, err)
	}
	clean := filepath.Clean(path)
	if !within(filepath.Clean(dir), clean) && !within(realDir, clean) {
		return "", fmt.Errorf("archive path %q is outside the checkpoint folder %s", path, dir)
	}
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", path, err)
	}
	if !within(realDir, real) {
		return "", fmt.Errorf("archive path %q resolves to %q, outside the checkpoint folder %s", path, real, dir)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("archive %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return real, nil
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
