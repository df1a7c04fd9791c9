// Command imagepush measures what it costs to turn a checkpoint archive into
// a pushed checkpoint image: the buildah backend, the native backend and a
// raw monolithic blob upload (the floor any client must pay), interleaved
// against a loopback docker-registry; then the peak memory of a native build
// of a 1 GiB archive in a child process. It prints one BENCH line per
// measurement on stdout and the details on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/stateshift/stateshift/test/registry"
)

func main() {
	var (
		archiveMiB = flag.Int("archive-mib", 200, "archive size for the push comparison")
		memoryMiB  = flag.Int("memory-mib", 1024, "archive size for the peak-memory measurement (0 skips it)")
		runs       = flag.Int("runs", 3, "runs per backend (interleaved)")
		driver     = flag.String("storage-driver", "overlay", "buildah storage driver: overlay or vfs")
		workDir    = flag.String("dir", "", "work folder (default: a new folder under $TMPDIR)")
		child      = flag.String("child-native", "", "internal: build ARCHIVE natively (used for the memory measurement)")
		childRepo  = flag.String("child-repo", "", "internal: repository for -child-native")
		childGzip  = flag.Bool("child-gzip", false, "internal: gzip the layer in -child-native")
	)
	flag.Parse()
	if *child != "" {
		os.Exit(childNative(*child, *childRepo, *childGzip))
	}
	if err := run(*archiveMiB, *memoryMiB, *runs, *driver, *workDir); err != nil {
		fmt.Fprintln(os.Stderr, "imagepush:", err)
		os.Exit(1)
	}
}

func run(archiveMiB, memoryMiB, runs int, driver, workDir string) error {
	if runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	dir := workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "stateshift-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	reg, err := registry.Launch(registry.WithDir(filepath.Join(dir, "registry")))
	if err != nil {
		return err
	}
	defer reg.Close()
	ctx := context.Background()

	archive := filepath.Join(dir, "checkpoint-200.tar")
	if err := writeArchive(archive, int64(archiveMiB)<<20); err != nil {
		return err
	}
	b := newBench(ctx, reg.Host, dir, driver)
	times := map[string][]float64{}
	for r := 0; r < runs; r++ {
		// A fresh nonce per round: every push is of new bytes, so no
		// backend can skip the upload as an existing or mountable blob.
		if err := stampNonce(archive); err != nil {
			return err
		}
		for _, backend := range []string{"buildah", "native", "raw"} {
			d, err := b.push(backend, archive, fmt.Sprintf("run-%d", r))
			if err != nil {
				return fmt.Errorf("%s run %d: %w", backend, r, err)
			}
			fmt.Fprintf(os.Stderr, "run %d %-7s %.2fs\n", r, backend, d.Seconds())
			times[backend] = append(times[backend], d.Seconds())
		}
	}
	bu, na, raw := median(times["buildah"]), median(times["native"]), median(times["raw"])
	fmt.Printf("BENCH image-push archive_mib=%d buildah_s=%.2f native_s=%.2f raw_s=%.2f buildah_over_native=%.2f native_over_raw=%.2f\n",
		archiveMiB, bu, na, raw, bu/na, na/raw)
	if err := os.Remove(archive); err != nil {
		return err
	}

	if memoryMiB > 0 {
		big := filepath.Join(dir, "checkpoint-big.tar")
		if err := writeArchive(big, int64(memoryMiB)<<20); err != nil {
			return err
		}
		peak, err := peakRSSOfNativeBuild(big, reg.Host+"/bench/memory")
		if err != nil {
			return err
		}
		fmt.Printf("BENCH agent-memory archive_mib=%d peak_rss_mib=%d\n", memoryMiB, peak)
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
