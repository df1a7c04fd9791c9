//go:build e2e

package e2e

// Moves on the real nodes of local-up (hack/local/realnode.sh): the kubelet
// checkpoints a running process through its checkpoint API, CRI-O and runc
// dump it with CRIU, the agent builds the checkpoint image, and on the other
// member CRI-O restores a new pod from that image. The oracle is the process
// itself, asked with kubectl exec: a restored process keeps its start time,
// its random memory (digest recomputed over the bytes) and the note written
// just before the move, and its counter continues from where it was dumped;
// a cold start has none of that.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

const (
	// realStateMiB is the memory the real test processes hold.
	realStateMiB = 16
	realTimeout  = 4 * time.Minute
	// realInterval is the schedule of the tests that move on a trigger:
	// the first checkpoint is due one interval after protection.
	realInterval = 20 * time.Second
)

var realLogs = append(logsFor(framework.Members...), "interpreter-webhook",
	"checkpoint-agent-member1-real", "checkpoint-agent-member2-real",
	"kubelet-member1", "kubelet-member2", "crio-member1", "crio-member2")

// realProtectedOnMember1 runs w on member1's real node, pre-pulls its image
// on member2's (CRI-O restores on top of the image the container ran and
// does not pull it), and protects it with a CheckpointPolicy using builder.
func realProtectedOnMember1(t *testing.T, ns string, w client.Object, image string, interval time.Duration, builder v1alpha1.Builder) *v1alpha1.CheckpointPolicy {
	t.Helper()
	env.PrePull(t, framework.Member2, ns, image)
	gvk := w.GetObjectKind().GroupVersionKind()
	env.Cordon(t, framework.Member2)
	env.Create(t, w, framework.PropagationPolicy(ns, "place", framework.Members, w))
	w.GetObjectKind().SetGroupVersionKind(gvk)
	framework.Eventually(t, scheduleTimeout, "bound to member1", boundTo(ns, gvk.Kind, w.GetName(), framework.Member1))
	framework.Eventually(t, realTimeout, "pods Running on member1's real node",
		env.PodsRunning(framework.Member1, ns, w.GetName(), replicasOf(w)))
	env.Uncordon(t, framework.Member2)
	cp := framework.CheckpointPolicy(ns, "protect", interval, "", w)
	cp.Spec.Builder = builder
	env.Create(t, cp)
	framework.Eventually(t, realTimeout, "restore armed with a verified checkpoint", armed(ns, cp.Name, w.GetName()))
	return cp
}

func memBefore(t *testing.T, cluster, ns, pod string) framework.MemState {
	t.Helper()
	return env.MemBefore(t, cluster, ns, pod)
}

func sameProcess(cluster, ns, pod string, before framework.MemState, minCounter uint64) framework.Check {
	return env.SameProcess(cluster, ns, pod, before, minCounter)
}

func realRestored(cluster, ns, app string) framework.Check { return env.RealRestored(cluster, ns, app) }

// memOnMember1 runs memstate as Deployment "mem" on member1's real node,
// protected with builder, and returns its state with a fresh note.
func memOnMember1(t *testing.T, ns string, builder v1alpha1.Builder) framework.MemState {
	t.Helper()
	w := framework.RealDeployment(ns, "mem", framework.MemstateImage(), framework.MemstateArgs(realStateMiB))
	realProtectedOnMember1(t, ns, w, framework.MemstateImage(), realInterval, builder)
	pod, err := env.LivePod(t.Context(), framework.Member1, ns, "mem")
	if err != nil {
		t.Fatal(err)
	}
	return memBefore(t, framework.Member1, ns, pod.Name)
}

// restoredOnMember2 waits for the Migration to be Restored, member2's real
// node to run app from the checkpoint image and member1 to run none of it;
// it returns the name of member2's pod.
func restoredOnMember2(t *testing.T, ns, app, migration string) string {
	t.Helper()
	framework.Eventually(t, realTimeout, "Migration Restored", migrationPhase(ns, migration, v1alpha1.MigrationRestored))
	framework.Eventually(t, realTimeout, "member2's real node runs "+app+" from the checkpoint image, member1 none",
		all(realRestored(framework.Member2, ns, app), env.NoPods(framework.Member1, ns, app)))
	moved, err := env.LivePod(t.Context(), framework.Member2, ns, app)
	if err != nil {
		t.Fatal(err)
	}
	return moved.Name
}

// TestRealRuntimeManualMove: a person's Migration moves a process holding
// its state only in memory from member1's real node to member2's; the
// image is built by buildah.
func TestRealRuntimeManualMove(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, realLogs...)
	ns := env.Namespace(t, "e2e-real-move")
	before := memOnMember1(t, ns, v1alpha1.BuilderBuildah)
	mig := toMember2(ns, "Deployment", "mem")
	env.Create(t, mig)
	moved := restoredOnMember2(t, ns, "mem", mig.Name)
	framework.Eventually(t, time.Minute, "the same process, restored by CRI-O", sameProcess(framework.Member2, ns, moved, before, before.Counter))
}

// TestRealRuntimeCordonThenReschedule: karmadactl cordon, then a NoExecute
// taint; the fresh checkpoint taken at the cordon is built by the native
// builder and restored on member2.
func TestRealRuntimeCordonThenReschedule(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, realLogs...)
	ns := env.Namespace(t, "e2e-real-cordon")
	before := memOnMember1(t, ns, v1alpha1.BuilderNative)
	env.Cordon(t, framework.Member1)
	m := onlyMigration(t, ns, v1alpha1.TriggerCordon)
	framework.Eventually(t, realTimeout, "Cordon Migration Armed", migrationPhase(ns, m.Name, v1alpha1.MigrationArmed))
	env.Taint(t, framework.Member1, "stateshift-e2e=reschedule:NoExecute")
	moved := restoredOnMember2(t, ns, "mem", m.Name)
	framework.Eventually(t, time.Minute, "the same process, restored by CRI-O", sameProcess(framework.Member2, ns, moved, before, before.Counter))
}

// TestRealRuntimeTransparentFailover: member1's real node (kubelet and
// CRI-O) and API server are lost; nobody touches a stateshift object; the
// StatefulSet runs on member2 restored from the last scheduled checkpoint.
func TestRealRuntimeTransparentFailover(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, realLogs...)
	const interval = 15 * time.Second
	ns := env.Namespace(t, "e2e-real-failover")
	w := framework.RealStatefulSet(ns, "db", framework.MemstateImage(), framework.MemstateArgs(realStateMiB), 1)
	realProtectedOnMember1(t, ns, w, framework.MemstateImage(), interval, v1alpha1.BuilderNative)
	before := memBefore(t, framework.Member1, ns, "db-0")
	// The note must be in a scheduled checkpoint before the loss: wait for
	// one that started after it was written.
	noted := time.Now()
	framework.Eventually(t, realTimeout, "a scheduled checkpoint verified after the note", func(ctx context.Context) (bool, string, error) {
		cps, err := env.Checkpoints(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		for _, c := range cps {
			if c.Status.Phase == v1alpha1.CheckpointSucceeded && c.CreationTimestamp.After(noted.Add(time.Second)) {
				return true, c.Name, nil
			}
		}
		return false, fmt.Sprintf("%d checkpoints", len(cps)), nil
	})
	atLoss, err := env.QueryMemState(t.Context(), framework.Member1, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	lostAt := time.Now()
	env.StopComponents(t, "kubelet-member1", "crio-member1", "member1-apiserver")
	env.Taint(t, framework.Member1, "stateshift-e2e=lost:NoExecute")
	t.Logf("member1 lost at counter %d", atLoss.Counter)

	framework.Eventually(t, 2*realTimeout, "db runs on member2's real node, restored", realRestored(framework.Member2, ns, "db"))
	framework.Eventually(t, time.Minute, "the same process, restored by CRI-O", sameProcess(framework.Member2, ns, "db-0", before, before.Counter))
	t.Logf("db-0 runs restored on member2 %.1fs after member1 was lost", time.Since(lostAt).Seconds())
	checkLostWindow(t, ns, atLoss, interval)
}

// checkLostWindow: the restored process ticks ten times a second and saw
// one long pause (dump to restore); the counter it resumed at is its
// counter now less the ticks since that pause ended. The state lost is
// the counter at the loss less that, at most one schedule interval plus
// the checkpoint's own time and the agent's pickup (slack).
func checkLostWindow(t *testing.T, ns string, atLoss framework.MemState, interval time.Duration) {
	t.Helper()
	const ticksPerSecond, slack = 10, 10
	now, err := env.QueryMemState(t.Context(), framework.Member2, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	if now.Paused.Count == 0 {
		t.Fatalf("the restored process saw no pause: %+v", now)
	}
	sinceResume := time.Since(time.Unix(now.Paused.LastPauseUnix, 0)).Seconds()
	resumedAt := float64(now.Counter) - sinceResume*ticksPerSecond
	lost := (float64(atLoss.Counter) - resumedAt) / ticksPerSecond
	t.Logf("lost window: %.1f s of state (counter %d at the loss, resumed at ~%.0f; paused %d ms; interval %s)",
		lost, atLoss.Counter, resumedAt, now.Paused.LongestMs, interval)
	if lost < -1 || lost > interval.Seconds()+slack {
		t.Fatalf("lost %.1f s of state, want 0..%.0f", lost, interval.Seconds()+slack)
	}
}

// TestRealRuntimeRedis: Debian's redis-server with persistence off; keys
// written before a person's move are there after it.
func TestRealRuntimeRedis(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, realLogs...)
	ns := env.Namespace(t, "e2e-real-redis")
	w := framework.RealDeployment(ns, "redis", framework.RedisImage(), nil)
	realProtectedOnMember1(t, ns, w, framework.RedisImage(), realInterval, v1alpha1.BuilderNative)
	pod, err := env.LivePod(t.Context(), framework.Member1, ns, "redis")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"user:1": "ada-" + rand.String(6), "user:2": "grace-" + rand.String(6), "counter": "42"}
	for k, v := range keys {
		if _, err := env.Exec(t.Context(), framework.Member1, ns, pod.Name, "main", "/usr/bin/redis-cli", "set", k, v); err != nil {
			t.Fatal(err)
		}
	}
	mig := toMember2(ns, "Deployment", "redis")
	env.Create(t, mig)
	moved := restoredOnMember2(t, ns, "redis", mig.Name)
	for k, v := range keys {
		framework.Eventually(t, time.Minute, "key "+k+" on member2", func(ctx context.Context) (bool, string, error) {
			out, err := env.Exec(ctx, framework.Member2, ns, moved, "main", "/usr/bin/redis-cli", "get", k)
			if err != nil {
				return false, "", err
			}
			return strings.TrimSpace(out) == v, fmt.Sprintf("%s=%q (want %q)", k, strings.TrimSpace(out), v), nil
		})
	}
}

// TestRealRuntimeStatefulSetPodsRestoreTheirOwn: a two-replica StatefulSet
// moves; db-0 and db-1 each resume their own process.
func TestRealRuntimeStatefulSetPodsRestoreTheirOwn(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, append(realLogs, "pod-restore-member2")...)
	ns := env.Namespace(t, "e2e-real-sts")
	w := framework.RealStatefulSet(ns, "db", framework.MemstateImage(), framework.MemstateArgs(realStateMiB), 2)
	realProtectedOnMember1(t, ns, w, framework.MemstateImage(), realInterval, v1alpha1.BuilderNative)
	before := map[string]framework.MemState{}
	for _, pod := range []string{"db-0", "db-1"} {
		before[pod] = memBefore(t, framework.Member1, ns, pod)
	}
	if before["db-0"].DigestAtStart == before["db-1"].DigestAtStart {
		t.Fatal("db-0 and db-1 hold the same memory: the test cannot tell them apart")
	}
	mig := toMember2(ns, "StatefulSet", "db")
	env.Create(t, mig)
	framework.Eventually(t, realTimeout, "Migration Restored", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	framework.Eventually(t, realTimeout, "db-0 and db-1 Running on member2", env.PodsRunning(framework.Member2, ns, "db", 2))
	for pod, st := range before {
		framework.Eventually(t, time.Minute, pod+" resumes its own process", sameProcess(framework.Member2, ns, pod, st, st.Counter))
	}
}
