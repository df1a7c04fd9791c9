// Command migration benchmarks a planned move in the local environment
// (hack/local-up.sh, started if it is not running): a single-container
// Deployment with 64 MiB of simulated state runs on member1, protected by a
// CheckpointPolicy; `karmadactl cordon member1` (stateshift takes a fresh
// checkpoint and arms the restore), then the reschedule that moves a
// workload off a cordoned member in Karmada v1.18.2, a NoExecute taint
// (graceful eviction). The clock runs from the cordon to the moment the
// simulated node of member2 started the container restored from the fresh
// checkpoint (its start time, as the node reports it). Median of 3 runs:
//
//	BENCH migration state_mib=64 trigger_to_restored_s=<x> checkpoint_s=<x> image_s=<x> controlplane_s=<x>
//
// checkpoint_s and image_s are the fresh Checkpoint's status.timings
// (kubelet checkpoint; image build, push and verify). The restore's pull of
// the 64 MiB checkpoint image on member2 is what member2's simulated node
// reports for the restored container (restorePullSeconds in its state, the
// duration of its Pulled event): manifest and layer, from the start of the
// pull to the last byte read. So
//
//	controlplane_s = trigger_to_restored_s - checkpoint_s - image_s - restore_pull_s
//
// is the rest: stateshift's and Karmada's reactions, the scheduling, the
// pod's creation on member2 and the node's sync, plus the simulated
// runtime's restore after the pull (its checks and the rebuilding of the
// memory, restore_runtime_s). Per run, stderr also prints restore_pull_s,
// restore_runtime_s and node_start_s (from the pod's PodScheduled time to
// the container's start, one-second resolution); the BENCH line holds the
// median of each field on its own.
//
// Run: go run ./test/bench/migration  (as root, like local-up)
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

const (
	stateBytes = 64 << 20
	runs       = 3
	app        = "app"
	taint      = "stateshift-bench=move:NoExecute"
	timeout    = 5 * time.Minute
)

type result struct {
	total, checkpoint, image float64
	// restorePull and restoreRuntime are the node's: the pull of the
	// checkpoint image and the rest of the restore.
	restorePull, restoreRuntime float64
	nodeStart                   float64
}

// controlplane is the time neither the checkpoint, the image nor the
// restore's pull account for.
func (r result) controlplane() float64 {
	return r.total - r.checkpoint - r.image - r.restorePull
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench migration:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	env, err := framework.Setup(ctx)
	if err != nil {
		return err
	}
	// The moves need both members schedulable; the demo, for one, leaves
	// member1 cordoned and tainted. Say so instead of timing out.
	for _, m := range []string{framework.Member1, framework.Member2} {
		c, err := env.Cluster(ctx, m)
		if err != nil {
			return err
		}
		if t := framework.TaintStrings(c); len(t) > 0 {
			return fmt.Errorf("cluster %s has taints %v: the benchmark needs both members schedulable (after make demo: karmadactl uncordon member1; karmadactl taint clusters member1 stateshift-demo=move:NoExecute-)", m, t)
		}
	}
	var rs []result
	for i := 0; i < runs; i++ {
		r, err := once(ctx, env, i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "run %d: trigger_to_restored_s=%.2f checkpoint_s=%.2f image_s=%.2f controlplane_s=%.2f restore_pull_s=%.2f restore_runtime_s=%.2f node_start_s=%.0f\n",
			i+1, r.total, r.checkpoint, r.image, r.controlplane(), r.restorePull, r.restoreRuntime, r.nodeStart)
		rs = append(rs, r)
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, 0, len(rs))
		for _, r := range rs {
			v = append(v, f(r))
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	fmt.Printf("BENCH migration state_mib=%d trigger_to_restored_s=%.2f checkpoint_s=%.2f image_s=%.2f controlplane_s=%.2f\n",
		stateBytes>>20, med(func(r result) float64 { return r.total }), med(func(r result) float64 { return r.checkpoint }),
		med(func(r result) float64 { return r.image }), med(result.controlplane))
	return env.Teardown()
}

func once(ctx context.Context, env *framework.Env, i int) (res result, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ns := fmt.Sprintf("bench-mig-%d-%s", i+1, rand.String(4))
	k := env.Karmada
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	defer cleanup(env, ns)

	deploy := framework.Deployment(ns, app, 1)
	framework.WithState(deploy, stateBytes)
	// member2 cordoned while the Deployment is scheduled: it lands on member1.
	if _, err := env.KarmadaCtl(ctx, "cordon", framework.Member2); err != nil {
		return res, err
	}
	pp := framework.PropagationPolicy(ns, "place", framework.Members, deploy)
	gvk := deploy.GetObjectKind().GroupVersionKind()
	if err := k.Create(ctx, deploy); err != nil {
		return res, err
	}
	deploy.GetObjectKind().SetGroupVersionKind(gvk) // Create decodes the answer without it
	if err := k.Create(ctx, pp); err != nil {
		return res, err
	}
	if err := wait(ctx, "running on member1", func() (bool, error) {
		ok, _, err := env.PodsRunning(framework.Member1, ns, app, 1)(ctx)
		return ok, err
	}); err != nil {
		return res, err
	}
	if _, err := env.KarmadaCtl(ctx, "uncordon", framework.Member2); err != nil {
		return res, err
	}
	// A long schedule: the one checkpoint that matters is the cordon's.
	if err := k.Create(ctx, framework.CheckpointPolicy(ns, "protect", 10*time.Minute, "", deploy)); err != nil {
		return res, err
	}
	if err := wait(ctx, "armed", func() (bool, error) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "protect"}, p); err != nil {
			return false, err
		}
		return p.Status.ArmedWorkloads == 1, nil
	}); err != nil {
		return res, err
	}

	start := time.Now()
	if _, err := env.KarmadaCtl(ctx, "cordon", framework.Member1); err != nil {
		return res, err
	}
	var m *v1alpha1.Migration
	if err := wait(ctx, "Cordon Migration Armed", func() (bool, error) {
		var l v1alpha1.MigrationList
		if err := k.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return false, err
		}
		if len(l.Items) == 1 && l.Items[0].Status.Phase == v1alpha1.MigrationArmed {
			m = &l.Items[0]
			return true, nil
		}
		return false, nil
	}); err != nil {
		return res, err
	}
	if _, err := env.KarmadaCtl(ctx, "taint", "clusters", framework.Member1, taint); err != nil {
		return res, err
	}
	if len(m.Status.Checkpoints) != 1 {
		return res, fmt.Errorf("migration %s has %d checkpoints", m.Name, len(m.Status.Checkpoints))
	}
	image := m.Status.Checkpoints[0].Images["main"]
	var restored nodesim.ContainerState
	var pod corev1.Pod
	if err := wait(ctx, "restored on member2", func() (bool, error) {
		var pods corev1.PodList
		if err := env.Members[framework.Member2].List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) != 1 {
			return false, err
		}
		pod = pods.Items[0]
		st, err := env.NodeState(ctx, framework.Member2, ns, pod.Name, "main")
		if err != nil || len(st) != 1 || !st[0].Running {
			return false, nil
		}
		if st[0].RestoredFrom != image {
			return false, fmt.Errorf("member2 runs %q, not restored from the fresh checkpoint %s", st[0].RestoredFrom, image)
		}
		restored = st[0]
		return true, nil
	}); err != nil {
		return res, err
	}
	if restored.RestorePullSeconds <= 0 {
		// A node simulator older than the restore timings: controlplane_s
		// would silently include the pull.
		return res, fmt.Errorf("member2's node reports no restore pull time for %s/%s: it runs an older test/nodesim; restart the local environment (hack/local-down.sh, hack/local-up.sh)", ns, pod.Name)
	}
	started := restored.Started
	cp := &v1alpha1.Checkpoint{}
	if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Status.Checkpoints[0].Name}, cp); err != nil {
		return res, err
	}
	t := cp.Status.Timings
	if t.Checkpoint == nil || t.Image == nil {
		return res, fmt.Errorf("checkpoint %s has no timings: %+v", cp.Name, t)
	}
	res = result{
		total: started.Sub(start).Seconds(), checkpoint: t.Checkpoint.Seconds(), image: t.Image.Seconds(),
		restorePull: restored.RestorePullSeconds, restoreRuntime: restored.RestoreRuntimeSeconds,
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			res.nodeStart = started.Sub(c.LastTransitionTime.Time).Seconds()
		}
	}
	return res, nil
}

// wait polls every 100 ms (the measurement's resolution).
func wait(ctx context.Context, what string, f func() (bool, error)) error {
	for {
		ok, err := f()
		if err != nil && !apierrors.IsNotFound(err) && !strings.Contains(err.Error(), "not restored") {
			fmt.Fprintf(os.Stderr, "  %s: %v\n", what, err)
		}
		if err != nil && strings.Contains(err.Error(), "not restored") {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cleanup restores the clusters and deletes the namespace, waiting until
// it is gone from Karmada and the members.
func cleanup(env *framework.Env, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, _ = env.KarmadaCtl(ctx, "taint", "clusters", framework.Member1, taint+"-")
	_, _ = env.KarmadaCtl(ctx, "uncordon", framework.Member1)
	_, _ = env.KarmadaCtl(ctx, "uncordon", framework.Member2)
	_ = env.Karmada.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	clients := []client.Client{env.Karmada, env.Members[framework.Member1], env.Members[framework.Member2]}
	for _, c := range clients {
		for ctx.Err() == nil {
			if err := c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
				break
			}
			time.Sleep(time.Second)
		}
	}
}
