// Command realmigration benchmarks a move of a real process between the real
// nodes of the local environment (hack/local-up.sh, started if it is not
// running): memstate (test/realnode/memstate) holding 256 MiB of random
// bytes in memory runs in a Deployment on member1's real node (kubelet,
// CRI-O, runc, CRIU), protected by a CheckpointPolicy (native builder,
// uncompressed layer, a 30-minute schedule so that only the move's fresh
// checkpoint counts); a person's Migration moves it to member2, where CRI-O
// restores it from the checkpoint image. The clock runs from the
// Migration's creation to the moment `memstate query --no-digest` on
// member2 answers from the restored process (member1's start time, memory
// identity and a counter not below its value before the move); then,
// untimed, a full query must find the memory's digest unchanged. Median of
// 3 runs:
//
//	BENCH real-migration state_mib=256 checkpoint_s=<x> image_s=<x> restore_s=<x> trigger_to_restored_s=<x> floor_s=<x> over_floor=<x>
//
// checkpoint_s and image_s are the fresh Checkpoint's status.timings (the
// kubelet's checkpoint call; the image's build, push and verification).
// restore_s runs from the restored pod's creation on member2, as a watch of
// member2's API server saw it, to the restored process's first answer (it
// includes the pull of the checkpoint image and CRI-O's restore). The
// answer is asked for from the moment the pod is on the node, not from the
// kubelet's report of the container as running, which comes up to a
// second later (its relist); stderr has that report's delay too
// (reported_running_s, from the same watch).
//
// floor_s is measured in each run on the same machine: the same memstate
// binary, outside any container, dumped with `criu dump` and restored with
// `criu restore` by the CRIU the real nodes use, plus one upload and one
// download of as many random bytes as one blob through the same registry.
// over_floor is trigger_to_restored_s / floor_s of the printed medians. Per
// run, stderr has the parts of both and the rest of the move (other_s).
//
//	go run ./test/bench/realmigration               (as root, like local-up)
//	go run ./test/bench/realmigration --floor-only  (no local environment)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// Targets of the README's performance section (issue 9).
const (
	targetOverFloor = 2.5
	targetTotal     = 8.0
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := &Options{}
	fs := pflag.NewFlagSet("realmigration", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if err := o.Complete(); err != nil {
		fmt.Fprintln(os.Stderr, "bench realmigration:", err)
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench realmigration:", err)
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench realmigration:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *Options) error {
	if err := setSubreaper(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "stateshift-realmigration-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	memstate, err := buildMemstate(ctx, dir)
	if err != nil {
		return err
	}
	if o.FloorOnly {
		return floorOnly(ctx, o, memstate)
	}

	env, err := framework.Setup(ctx)
	if err != nil {
		return err
	}
	// The move needs both members schedulable; the demo, for one, leaves
	// member1 cordoned and tainted. Say so instead of timing out.
	if t := taints(ctx, env); t != "" {
		return fmt.Errorf("members have taints (%s): the benchmark needs both schedulable (after make demo: karmadactl uncordon member1; karmadactl taint clusters member1 stateshift-demo=move:NoExecute-)", t)
	}
	var moves []move
	var floors []floor
	for i := 0; i < o.Runs; i++ {
		f, err := measureFloor(ctx, o, memstate)
		if err != nil {
			return fmt.Errorf("run %d: floor: %w", i+1, err)
		}
		m, err := moveOnce(ctx, env, o, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: trigger_to_restored_s=%.2f checkpoint_s=%.2f image_s=%.2f restore_s=%.2f (pull_s=%.2f) other_s=%.2f reported_running_s=%.2f archive_mib=%.0f counter=%d->%d over_floor=%.2f\n",
			i+1, m.total, m.checkpoint, m.image, m.restore, m.pull, m.other(), m.reportedRunning, m.archiveMiB, m.counterBefore, m.counterAfter, m.total/f.total())
		printFloor(i, f)
		moves, floors = append(moves, m), append(floors, f)
	}
	total := median(moves, func(m move) float64 { return m.total })
	fl := median(floors, floor.total)
	fmt.Printf("BENCH real-migration state_mib=%d checkpoint_s=%.2f image_s=%.2f restore_s=%.2f trigger_to_restored_s=%.2f floor_s=%.2f over_floor=%.2f\n",
		o.MiB, median(moves, func(m move) float64 { return m.checkpoint }), median(moves, func(m move) float64 { return m.image }),
		median(moves, func(m move) float64 { return m.restore }), total, fl, total/fl)
	fmt.Fprintf(os.Stderr, "targets: over_floor %.2f <= %.1f: %s; trigger_to_restored_s %.2f <= %.0f: %s\n",
		total/fl, targetOverFloor, met(total/fl <= targetOverFloor), total, targetTotal, met(total <= targetTotal))
	return env.Teardown()
}

// floorOnly measures the floor alone, o.Runs times.
func floorOnly(ctx context.Context, o *Options, memstate string) error {
	var floors []floor
	for i := 0; i < o.Runs; i++ {
		f, err := measureFloor(ctx, o, memstate)
		if err != nil {
			return fmt.Errorf("run %d: floor: %w", i+1, err)
		}
		printFloor(i, f)
		floors = append(floors, f)
	}
	fmt.Printf("BENCH real-migration-floor state_mib=%d dump_s=%.2f restore_s=%.2f upload_s=%.2f download_s=%.2f floor_s=%.2f\n",
		o.MiB, median(floors, func(f floor) float64 { return f.dump }), median(floors, func(f floor) float64 { return f.restore }),
		median(floors, func(f floor) float64 { return f.upload }), median(floors, func(f floor) float64 { return f.download }),
		median(floors, floor.total))
	return nil
}

func printFloor(i int, f floor) {
	fmt.Fprintf(os.Stderr, "run %d: floor_s=%.2f dump_s=%.2f restore_s=%.2f upload_s=%.2f download_s=%.2f criu_images_mib=%.0f restored_answer_s=%.2f\n",
		i+1, f.total(), f.dump, f.restore, f.upload, f.download, f.dumpMiB, f.answer)
}

// median of one field; each field's median is taken on its own.
func median[T any](rs []T, field func(T) float64) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		v = append(v, field(r))
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
