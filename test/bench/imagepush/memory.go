package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stateshift/stateshift/pkg/agent/builder"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// peakRSSOfNativeBuild re-executes this program to build archive natively
// in a process of its own and returns that process's peak RSS in MiB (the
// kernel's ru_maxrss; the child also reports its VmHWM, which must agree).
func peakRSSOfNativeBuild(archive, repo string) (int64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "-child-native", archive, "-child-repo", repo)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("native build child: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("no rusage for the child")
	}
	fmt.Fprintf(os.Stderr, "child: %s", out)
	return ru.Maxrss / 1024, nil // Linux reports KiB
}

// childNative is the child's side: one native build, verified, then its
// VmHWM printed for the record.
func childNative(archive, repo string, gzip bool) int {
	ctx := context.Background()
	compression := v1alpha1.LayerCompressionNone
	if gzip {
		compression = v1alpha1.LayerCompressionGzip
	}
	res, err := builder.NewNative().Build(ctx, builder.Request{
		Compression: compression,
		ArchivePath: archive,
		Repository:  repo,
		Tag:         "memory",
		Annotations: checkpointimage.Annotations(checkpointimage.Source{Container: "web"}),
		Insecure:    true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "native build:", err)
		return 1
	}
	if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", nil, name.Insecure); err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return 1
	}
	fmt.Printf("pushed %s layer_bytes=%d VmHWM=%s\n", res.Reference, res.LayerBytes, vmHWM())
	return 0
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return "?"
}
