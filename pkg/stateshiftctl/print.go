package stateshiftctl

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/wait"
)

// mib prints a size as operators read it in `kubectl get`: MiB, or KiB
// below one MiB so that small sizes do not read as nothing.
func mib(bytes int64) string {
	if bytes < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(bytes)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}

// age prints how long ago t was, as kubectl's AGE column does; "-" for never.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

// newTable is a kubectl-like table writer.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

func printImageReport(w io.Writer, format string, r *ImageReport) error {
	if done, err := printStructured(w, format, r); done {
		return err
	}
	t := newTable(w)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		_, _ = fmt.Fprintf(t, "%s:\t%s\n", k, v)
	}
	row("Image", r.Image+"@"+r.Digest)
	row("Namespace", r.Namespace)
	row("Pod", r.Pod)
	if format == outputWide {
		row("Pod UID", r.PodUID)
	}
	row("Container", r.Container)
	row("Rootfs image", r.RootfsImage)
	row("Runtime", r.Runtime)
	if !r.CheckpointedAt.IsZero() {
		row("Checkpointed", r.CheckpointedAt.Format(time.RFC3339))
	}
	row("CRIU", r.CRIUVersion)
	row("Kernel", r.Kernel)
	row("Architecture", r.Architecture)
	row("Pulled size", mib(r.LayerBytes))
	row("Archive size", mib(r.ArchiveBytes))
	row("Memory pages", mib(r.MemoryBytes))
	row("Rootfs changes", mib(r.RootfsDiffBytes))
	if format == outputWide {
		row("Files", fmt.Sprint(r.Files))
	}
	return t.Flush()
}

// follow polls each second until done says so or ctx ends, printing a
// progress line (with the time since start) whenever line changes. It
// returns ctx's error when the deadline came first.
func follow(ctx context.Context, progress io.Writer, poll func(context.Context) (line string, done bool, err error)) error {
	start, last := time.Now(), ""
	return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		line, done, err := poll(ctx)
		if err != nil {
			return false, err
		}
		if line != last {
			_, _ = fmt.Fprintf(progress, "[+%s] %s\n", time.Since(start).Round(100*time.Millisecond), line)
			last = line
		}
		return done, nil
	})
}
