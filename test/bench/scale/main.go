// Command scale benchmarks stateshift with many protected workloads in the
// local environment (hack/local-up.sh with simulated nodes, started with
// room for the pods if it is not running): -workloads single-replica
// StatefulSets with a small simulated state, spread over -namespaces
// namespaces, each namespace protected by one CheckpointPolicy with a
// -interval schedule. -storm of them run on member1 (placed there while
// member2 is cordoned, allowed on both), the rest on member2 only.
//
// Three phases:
//
//   - round: from the policies' creation until every workload has a
//     verified checkpoint (round_s, and the round's rate checkpoints_per_s);
//
//   - steady state: one more full interval; every 10 s the largest age of
//     a workload's latest verified checkpoint (max_checkpoint_age_s); the
//     controller's peak RSS over this interval (its high-water mark
//     restarted as the interval begins; the peak through the deploy and
//     the first round is printed beside it) and its mean CPU between the
//     rounds; its
//     Karmada API and cluster-proxy requests (client-go's
//     rest_client_requests_total) during this interval, per workload
//     (requests_per_workload_round);
//
//   - storm: member1 is lost (its API server and node killed, a NoExecute
//     taint), and the clock runs until each of its workloads runs restored
//     on member2 (all_restored_s, p50_restored_s); lost_window_max_s is the
//     largest gap, in seconds of the simulated counter, between a
//     workload's state at the loss and the state it was restored to.
//
//     BENCH scale workloads=1000 members=2 round_s=<x> checkpoints_per_s=<x> max_checkpoint_age_s=<x> controller_rss_mib=<x> controller_cpu_cores=<x> requests_per_workload_round=<x>
//     BENCH failover-storm workloads=100 all_restored_s=<x> p50_restored_s=<x> lost_window_max_s=<x>
//
// The controller runs inside the interpreter webhook's process in the local
// environment, so its RSS and CPU include the webhook's answers to Karmada.
//
// Run: go run ./test/bench/scale  (as root, like local-up; make bench-scale)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

type config struct {
	workloads, storm, namespaces int
	interval                     time.Duration
	stateBytes                   int64
	keep                         bool
}

func main() {
	var c config
	flag.IntVar(&c.workloads, "workloads", 1000, "protected single-replica StatefulSets")
	flag.IntVar(&c.storm, "storm", 100, "of them on member1, moved by its loss (0: no storm)")
	flag.IntVar(&c.namespaces, "namespaces", 10, "namespaces (one CheckpointPolicy each)")
	flag.DurationVar(&c.interval, "interval", 300*time.Second, "the policies' checkpoint interval")
	flag.Int64Var(&c.stateBytes, "state-bytes", 64<<10, "simulated memory per pod")
	flag.BoolVar(&c.keep, "keep", false, "leave the namespaces in place at the end")
	flag.Parse()
	// The Checkpoint cache (controller-runtime) logs through klog.
	log.SetLogger(klog.Background())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench scale:", err)
		os.Exit(1)
	}
}

// agentSlots is how many checkpoints the agents of a member holding
// workloads pods run at once on a real cluster: 2 per node of 110 pods.
func agentSlots(workloads int) int {
	return 2 * max(1, (workloads+109)/110)
}

func run(ctx context.Context, c config) error {
	if c.storm > c.workloads || c.namespaces < 1 || c.workloads < c.namespaces {
		return fmt.Errorf("need 0 <= -storm <= -workloads and 1 <= -namespaces <= -workloads")
	}
	// Room for every pod on one simulated node per member (nodesim --pods).
	if os.Getenv("NODESIM_PODS") == "" {
		_ = os.Setenv("NODESIM_PODS", fmt.Sprint(c.workloads+100))
	}
	// That one node's agent stands in for the agents of the nodes a member
	// of that size has (110 pods a node, 2 checkpoints at once each).
	if os.Getenv("AGENT_MAX_CONCURRENT") == "" {
		_ = os.Setenv("AGENT_MAX_CONCURRENT", fmt.Sprint(agentSlots(c.workloads)))
	}
	// ... with the API request rate of those agents (20 a second each).
	if os.Getenv("AGENT_KUBE_API_QPS") == "" {
		_ = os.Setenv("AGENT_KUBE_API_QPS", fmt.Sprint(10*agentSlots(c.workloads)))
	}
	// Karmada tuned for a large federation (hack/local-up.sh): its
	// defaults, 40 requests a second and 5 workers, carry about two
	// Checkpoints a second through their bindings and Works, and its taint
	// manager evicts 1.5 bindings a second from a lost member (3 workers
	// at --resource-eviction-rate 0.5): 67 s for a storm of 100.
	for k, v := range map[string]string{"KARMADA_API_QPS": "400", "KARMADA_CONCURRENT_SYNCS": "20", "KARMADA_RESOURCE_EVICTION_RATE": "5"} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
	fmt.Fprintf(os.Stderr, "bench scale: simulated nodes hold %s pods, their agents run %s checkpoints at once at %s requests/s; Karmada %s requests/s, %s workers, eviction rate %s\n",
		os.Getenv("NODESIM_PODS"), os.Getenv("AGENT_MAX_CONCURRENT"), os.Getenv("AGENT_KUBE_API_QPS"),
		os.Getenv("KARMADA_API_QPS"), os.Getenv("KARMADA_CONCURRENT_SYNCS"), os.Getenv("KARMADA_RESOURCE_EVICTION_RATE"))
	env, err := framework.Setup(ctx)
	if err != nil {
		return err
	}
	b := &bench{env: env, c: c}
	if err := b.checkRoom(ctx); err != nil {
		return err
	}
	if !c.keep {
		defer b.cleanup()
	}
	if err := b.deploy(ctx); err != nil {
		return err
	}
	sc, err := b.measureRounds(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("BENCH scale workloads=%d members=%d round_s=%.1f checkpoints_per_s=%.1f max_checkpoint_age_s=%.0f controller_rss_mib=%.0f controller_cpu_cores=%.3f requests_per_workload_round=%.2f\n",
		c.workloads, len(framework.Members), sc.round, float64(c.workloads)/sc.round, sc.maxAge, sc.rssMiB, sc.cpuCores, sc.requestsPerWorkload)
	if c.storm == 0 {
		return nil
	}
	st, err := b.storm(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("BENCH failover-storm workloads=%d all_restored_s=%.1f p50_restored_s=%.1f lost_window_max_s=%d\n",
		c.storm, st.all, st.p50, st.lostMax)
	return nil
}
