package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

const (
	lostTaint = "stateshift-bench=lost:NoExecute"
	stormWait = 10 * time.Minute
)

type stormResult struct {
	all, p50 float64
	lostMax  int64
}

// storm loses member1 and times the restores of its workloads on member2.
func (b *bench) storm(ctx context.Context) (stormResult, error) {
	var r stormResult
	before, err := b.nodeStates(ctx, framework.Member1)
	if err != nil {
		return r, err
	}
	for _, w := range b.stormNames {
		if _, ok := before[w]; !ok {
			return r, fmt.Errorf("member1's node runs no container of %s", w)
		}
	}
	metricsBefore := snapshotKarmadaMetrics(ctx, b.env.RunDir, "before-storm")
	cpuBefore := readCPUUse(b.env.RunDir)
	karmadaBefore := readAPIRequests(ctx, "karmada-apiserver", b.env.KarmadaConfig)
	lostAt := time.Now()
	if err := b.loseMember1(ctx); err != nil {
		return r, err
	}
	defer b.bringBackMember1()
	restoredAfter := map[string]float64{}
	err = poll(ctx, stormWait, 2*time.Second, fmt.Sprintf("%d workloads restored on member2", len(b.stormNames)), func(ctx context.Context) (bool, string, error) {
		now, err := b.nodeStates(ctx, framework.Member2)
		if err != nil {
			return false, "", err
		}
		for _, w := range b.stormNames {
			st, ok := now[w]
			if _, seen := restoredAfter[w]; seen || !ok || !st.Running {
				continue
			}
			if st.RestoredFrom == "" {
				return false, "", fmt.Errorf("%s started cold on member2 (%s)", w, st.Reason)
			}
			restoredAfter[w] = time.Since(lostAt).Seconds()
			r.lostMax = max(r.lostMax, int64(before[w].Counter)-int64(st.RestoredCounter))
		}
		return len(restoredAfter) == len(b.stormNames), fmt.Sprintf("%d restored", len(restoredAfter)), nil
	})
	// Who was busy while the lost member's workloads waited for karmada-scheduler,
	// and how fast Karmada's API server answered its writes.
	reportCPU("storm", cpuBefore, readCPUUse(b.env.RunDir), len(b.stormNames), "a moved workload", time.Since(lostAt).Seconds())
	reportAPIRequests("storm", "karmada-apiserver", karmadaBefore, readAPIRequests(ctx, "karmada-apiserver", b.env.KarmadaConfig), len(b.stormNames), "a moved workload")
	b.stormTimeline(ctx, lostAt)
	stormMetricsReport(metricsBefore, snapshotKarmadaMetrics(ctx, b.env.RunDir, "after-storm"))
	if err != nil {
		return r, err
	}
	times := make([]float64, 0, len(restoredAfter))
	for _, t := range restoredAfter {
		times = append(times, t)
	}
	r.p50, r.all = p50AndMax(times)
	fmt.Fprintf(os.Stderr, "storm: %d restored on member2, the last %.1fs after the loss; bringing member1 back\n", len(times), r.all)
	return r, nil
}

// nodeStates maps "<namespace>/<workload>" to the container state of its
// pod (<workload>-0) on a member's simulated node.
func (b *bench) nodeStates(ctx context.Context, cluster string) (map[string]nodesim.ContainerState, error) {
	list, err := b.env.NodeState(ctx, cluster, "", "", "")
	if err != nil {
		return nil, err
	}
	out := map[string]nodesim.ContainerState{}
	for _, st := range list {
		if strings.HasPrefix(st.Namespace, "bench-scale-") {
			out[st.Namespace+"/"+strings.TrimSuffix(st.Pod, "-0")] = st
		}
	}
	return out, nil
}

// loseMember1 kills member1's API server and node (a lost machine does
// not shut down cleanly) and taints the cluster NoExecute, as the e2e
// failover test does.
func (b *bench) loseMember1(ctx context.Context) error {
	for _, name := range []string{"nodesim-member1", "member1-apiserver"} {
		p, err := newProcess(b.env.RunDir, name)
		if err != nil {
			return err
		}
		if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("stop %s (pid %d): %w", name, p.pid, err)
		}
	}
	return b.karmadactl(ctx, "taint", "clusters", framework.Member1, lostTaint)
}

// bringBackMember1 starts what local-up started and the storm killed, and
// lifts the taint.
func (b *bench) bringBackMember1() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(framework.Root(), "hack", "local-up.sh"))
	cmd.Env = append(os.Environ(), "STATESHIFT_RUN_DIR="+b.env.RunDir)
	// local-up's background children may keep its output open after it
	// is killed: stop waiting for them.
	cmd.WaitDelay = 10 * time.Second
	if _, err := os.Stat(filepath.Join(b.env.RunDir, "registry", "auth.json")); err == nil && os.Getenv("REGISTRY_AUTH") == "" {
		cmd.Env = append(cmd.Env, "REGISTRY_AUTH=1")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "hack/local-up.sh (bring member1 back): %v\n%s\n", err, out)
	}
	if err := b.karmadactl(ctx, "taint", "clusters", framework.Member1, lostTaint+"-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
