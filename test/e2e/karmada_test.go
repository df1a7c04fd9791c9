//go:build e2e

package e2e

// These tests pin, against the real Karmada v1.18.2 the local environment
// runs, the behaviours stateshift's migration work stands on (see
// /work/shared/design/karmada.md): propagation to a member's (simulated)
// node; what `karmadactl cordon` does and does not do; that a
// WorkloadRebalancer does NOT move a workload off a cordoned cluster it
// already runs in, while a placement change moves it at once without
// graceful eviction; and that a NoExecute taint evicts gracefully, keeping
// the old Work until the new cluster is healthy. If Karmada changes any of
// this, these tests say so before the migration tests do.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/karmada-io/karmada/pkg/apis/apps/v1alpha1"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

const (
	scheduleTimeout = 2 * time.Minute
	// A cluster-status period is 10s: watching 20s shows a controller had
	// every chance to act.
	holdFor = 20 * time.Second
)

var karmadaLogs = []string{"karmada-controller-manager", "karmada-scheduler", "karmada-webhook"}

func logsFor(members ...string) []string {
	out := slices.Clone(karmadaLogs)
	for _, m := range members {
		out = append(out, "nodesim-"+m, m+"-kube-controller-manager", m+"-kube-scheduler")
	}
	return out
}

func boundTo(ns, kind, name string, want ...string) framework.Check {
	return env.BoundTo(ns, kind, name, want...)
}

// workPresent checks that the Work for a workload exists in a cluster's
// execution namespace and is not being deleted.
func workPresent(cluster, ns, kind, name string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		w, err := env.Work(ctx, cluster, ns, kind, name)
		if err != nil {
			return false, fmt.Sprintf("work for %s: %v", cluster, err), nil
		}
		return w.DeletionTimestamp == nil, fmt.Sprintf("work %s/%s deleting=%t", w.Namespace, w.Name, w.DeletionTimestamp != nil), nil
	}
}

func workGone(cluster, ns, kind, name string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		_, err := env.Work(ctx, cluster, ns, kind, name)
		if apierrors.IsNotFound(err) {
			return true, "no work for " + cluster, nil
		}
		return false, fmt.Sprintf("work for %s still there (err %v)", cluster, err), nil
	}
}

func all(checks ...framework.Check) framework.Check { return framework.All(checks...) }

// nodeOf is a member's simulated node (each member also has a real node,
// framework.RealNodeName, which only workloads that ask for it use).
func nodeOf(t *testing.T, cluster string) string {
	t.Helper()
	nodes, err := env.NodeNames(t.Context(), cluster)
	var simulated []string
	for _, n := range nodes {
		if n != framework.RealNodeName(cluster) {
			simulated = append(simulated, n)
		}
	}
	if err != nil || len(simulated) != 1 {
		t.Fatalf("%s: want exactly one simulated node, got %v (err %v)", cluster, nodes, err)
	}
	return simulated[0]
}

func TestMembersJoinedAndReady(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, "karmada-controller-manager", "karmada-aggregated-apiserver")
	for _, m := range framework.Members {
		framework.Eventually(t, time.Minute, m+" Ready in Karmada", env.ClusterReady(m))
		c, err := env.Cluster(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec.SyncMode != clusterv1alpha1.Push {
			t.Errorf("%s: syncMode %q, want Push", m, c.Spec.SyncMode)
		}
		if !strings.HasPrefix(c.Spec.APIEndpoint, "https://127.0.0.1:") {
			t.Errorf("%s: apiEndpoint %q is not on loopback", m, c.Spec.APIEndpoint)
		}
		if taints := framework.TaintStrings(c); len(taints) != 0 {
			t.Errorf("%s: unexpected taints %v (a previous test did not restore the cluster?)", m, taints)
		}
	}
}

func TestDeploymentAndStatefulSetRunOnMember1Node(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, logsFor(framework.Member1)...)
	ns := env.Namespace(t, "e2e-propagate")
	deploy := framework.Deployment(ns, "web", 2)
	sts := framework.StatefulSet(ns, "db", 2)
	env.Create(t, deploy, sts, framework.PropagationPolicy(ns, "to-member1", []string{framework.Member1}, deploy, sts))

	framework.Eventually(t, scheduleTimeout, "deployment bound to member1", boundTo(ns, "Deployment", "web", framework.Member1))
	framework.Eventually(t, scheduleTimeout, "statefulset bound to member1", boundTo(ns, "StatefulSet", "db", framework.Member1))
	framework.Eventually(t, scheduleTimeout, "deployment pods Running on member1's node", env.PodsRunning(framework.Member1, ns, "web", 2))
	framework.Eventually(t, scheduleTimeout, "statefulset pods Running on member1's node", env.PodsRunning(framework.Member1, ns, "db", 2))
	for _, app := range []string{"web", "db"} {
		if ok, saw, err := env.NoPods(framework.Member2, ns, app)(t.Context()); err != nil || !ok {
			t.Errorf("member2 should run no %s pods: %s %v", app, saw, err)
		}
	}
}

// TestCordonOnlyAddsNoScheduleTaint: `karmadactl cordon` adds exactly the
// cluster.karmada.io/unschedulable:NoSchedule taint and evicts nothing.
func TestCordonOnlyAddsNoScheduleTaint(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, logsFor(framework.Member1)...)
	ns := env.Namespace(t, "e2e-cordon")
	deploy := framework.Deployment(ns, "web", 1)
	env.Create(t, deploy, framework.PropagationPolicy(ns, "to-member1", []string{framework.Member1}, deploy))
	framework.Eventually(t, scheduleTimeout, "pod Running on member1", env.PodsRunning(framework.Member1, ns, "web", 1))

	before, err := env.Cluster(t.Context(), framework.Member1)
	if err != nil {
		t.Fatal(err)
	}
	env.Cordon(t, framework.Member1)
	after, err := env.Cluster(t.Context(), framework.Member1)
	if err != nil {
		t.Fatal(err)
	}
	want := append(framework.TaintStrings(before), "cluster.karmada.io/unschedulable:NoSchedule")
	slices.Sort(want)
	if got := framework.TaintStrings(after); !slices.Equal(got, want) {
		t.Fatalf("taints after cordon: %v, want %v", got, want)
	}
	framework.Consistently(t, holdFor, "cordoned member1 keeps the workload", all(
		boundTo(ns, "Deployment", "web", framework.Member1),
		noEvictionTasks(ns, "Deployment", "web"),
		workPresent(framework.Member1, ns, "Deployment", "web"),
		env.PodsRunning(framework.Member1, ns, "web", 1),
	))
	env.Uncordon(t, framework.Member1)
	c, err := env.Cluster(t.Context(), framework.Member1)
	if err != nil {
		t.Fatal(err)
	}
	if got := framework.TaintStrings(c); !slices.Equal(got, framework.TaintStrings(before)) {
		t.Fatalf("taints after uncordon: %v, want %v", got, framework.TaintStrings(before))
	}
}

func noEvictionTasks(ns, kind, name string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		rb, err := env.Binding(ctx, ns, kind, name)
		if err != nil {
			return false, "", err
		}
		return len(rb.Spec.GracefulEvictionTasks) == 0, fmt.Sprintf("gracefulEvictionTasks=%+v", rb.Spec.GracefulEvictionTasks), nil
	}
}

// placeOnMember1 creates a one-replica Deployment whose policy allows both
// members, with member2 cordoned while it is scheduled so it lands on
// member1; member2 is uncordoned again before returning. Divided replicas
// are not rescheduled when a cluster changes, so it stays on member1.
func placeOnMember1(t *testing.T, ns string) {
	t.Helper()
	deploy := framework.Deployment(ns, "web", 1)
	env.Cordon(t, framework.Member2)
	env.Create(t, deploy, framework.PropagationPolicy(ns, "both", framework.Members, deploy))
	framework.Eventually(t, scheduleTimeout, "bound to member1 while member2 is cordoned", boundTo(ns, "Deployment", "web", framework.Member1))
	framework.Eventually(t, scheduleTimeout, "pod Running on member1", env.PodsRunning(framework.Member1, ns, "web", 1))
	env.Uncordon(t, framework.Member2)
}

// TestWorkloadRebalancerDoesNotMoveWorkloadOffCordonedMember pins what a
// WorkloadRebalancer does after `karmadactl cordon` of the cluster a
// workload runs in: it triggers a Fresh reschedule, but the cordoned cluster
// is still a candidate, because the scheduler's TaintToleration filter skips
// clusters already in the binding's spec.clusters (v1.18.2
// pkg/scheduler/framework/plugins/tainttoleration), and Fresh division counts
// the replicas a cluster already runs as available there. With divided,
// aggregated replicas the workload stays where it is. What does move it is a
// placement change (the policy no longer allows member1): the move happens at
// once, without a graceful-eviction task, and the member1 Work is deleted.
func TestWorkloadRebalancerDoesNotMoveWorkloadOffCordonedMember(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, logsFor(framework.Members...)...)
	ns := env.Namespace(t, "e2e-rebalance")
	placeOnMember1(t, ns)

	env.Cordon(t, framework.Member1)
	framework.Consistently(t, 5*time.Second, "cordon alone moves nothing", all(
		boundTo(ns, "Deployment", "web", framework.Member1),
		env.PodsRunning(framework.Member1, ns, "web", 1),
	))

	wr := &appsv1alpha1.WorkloadRebalancer{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: appsv1alpha1.WorkloadRebalancerSpec{Workloads: []appsv1alpha1.ObjectReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web",
		}}},
	}
	env.Create(t, wr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.Karmada.Delete(ctx, wr); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("restore: delete WorkloadRebalancer %s: %v", wr.Name, err)
		}
	})
	framework.Eventually(t, 30*time.Second, "rebalancer reports success", func(ctx context.Context) (bool, string, error) {
		got := &appsv1alpha1.WorkloadRebalancer{}
		if err := env.Karmada.Get(ctx, client.ObjectKeyFromObject(wr), got); err != nil {
			return false, "", err
		}
		ok := len(got.Status.ObservedWorkloads) == 1 && got.Status.ObservedWorkloads[0].Result == appsv1alpha1.RebalanceSuccessful
		return ok, fmt.Sprintf("status %+v", got.Status.ObservedWorkloads), nil
	})
	framework.Eventually(t, scheduleTimeout, "binding rescheduled after the trigger", func(ctx context.Context) (bool, string, error) {
		rb, err := env.Binding(ctx, ns, "Deployment", "web")
		if err != nil {
			return false, "", err
		}
		trig, last := rb.Spec.RescheduleTriggeredAt, rb.Status.LastScheduledTime
		ok := trig != nil && last != nil && !last.Before(trig)
		return ok, fmt.Sprintf("rescheduleTriggeredAt=%v lastScheduledTime=%v clusters=%v", trig, last, framework.BoundClusters(rb)), nil
	})
	framework.Consistently(t, holdFor, "after the rebalance the workload is still on cordoned member1", all(
		boundTo(ns, "Deployment", "web", framework.Member1),
		noEvictionTasks(ns, "Deployment", "web"),
		workPresent(framework.Member1, ns, "Deployment", "web"),
		env.PodsRunning(framework.Member1, ns, "web", 1),
		env.NoPods(framework.Member2, ns, "web"),
	))

	// A placement change does move it, at once and without graceful eviction.
	pp := &policyv1alpha1.PropagationPolicy{}
	if err := env.Karmada.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "both"}, pp); err != nil {
		t.Fatal(err)
	}
	pp.Spec.Placement.ClusterAffinity.ClusterNames = []string{framework.Member2}
	if err := env.Karmada.Update(t.Context(), pp); err != nil {
		t.Fatalf("update policy to member2 only: %v", err)
	}
	sawTask := false
	framework.Eventually(t, scheduleTimeout, "placement change moves it to member2", func(ctx context.Context) (bool, string, error) {
		if ok, _, _ := noEvictionTasks(ns, "Deployment", "web")(ctx); !ok {
			sawTask = true
		}
		return all(
			boundTo(ns, "Deployment", "web", framework.Member2),
			env.PodsRunning(framework.Member2, ns, "web", 1),
			workGone(framework.Member1, ns, "Deployment", "web"),
			env.NoPods(framework.Member1, ns, "web"),
		)(ctx)
	})
	if sawTask {
		t.Errorf("a placement change created a graceful-eviction task; Karmada v1.18.2 did not when this test was written")
	}
}

// TestNoExecuteTaintEvictsGracefully: a NoExecute taint on member1 evicts
// the workload through a graceful-eviction task; the member1 Work (and pod)
// stays while member2's copy is unhealthy, and goes once it is healthy.
func TestNoExecuteTaintEvictsGracefully(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, logsFor(framework.Members...)...)
	ns := env.Namespace(t, "e2e-noexecute")
	placeOnMember1(t, ns)

	// member2's node takes no pods for now: the workload there stays
	// unavailable, so Karmada's health interpretation says Unhealthy.
	node2 := nodeOf(t, framework.Member2)
	env.CordonNode(t, framework.Member2, node2)

	env.Taint(t, framework.Member1, "stateshift-e2e=evict:NoExecute")
	framework.Eventually(t, scheduleTimeout, "evicted from member1 into a graceful-eviction task", func(ctx context.Context) (bool, string, error) {
		rb, err := env.Binding(ctx, ns, "Deployment", "web")
		if err != nil {
			return false, "", err
		}
		var from []string
		for _, task := range rb.Spec.GracefulEvictionTasks {
			from = append(from, task.FromCluster)
		}
		got := framework.BoundClusters(rb)
		return slices.Equal(from, []string{framework.Member1}) && slices.Equal(got, []string{framework.Member2}),
			fmt.Sprintf("spec.clusters=%v tasks from %v", got, from), nil
	})
	framework.Consistently(t, holdFor, "old Work and pod stay while member2 is unhealthy", all(
		workPresent(framework.Member1, ns, "Deployment", "web"),
		env.PodsRunning(framework.Member1, ns, "web", 1),
		func(ctx context.Context) (bool, string, error) {
			ok, saw, err := noEvictionTasks(ns, "Deployment", "web")(ctx)
			return !ok, saw, err
		},
	))

	env.UncordonNode(t, framework.Member2, node2)
	framework.Eventually(t, scheduleTimeout, "member2 healthy, then the member1 copy is removed", all(
		env.PodsRunning(framework.Member2, ns, "web", 1),
		noEvictionTasks(ns, "Deployment", "web"),
		workGone(framework.Member1, ns, "Deployment", "web"),
		env.NoPods(framework.Member1, ns, "web"),
	))
}
