//go:build e2e

package e2e

// Issue 5's migration scenarios against the real Karmada v1.18.2 of
// local-up, with stateshift's controller (in the interpreter-webhook
// binary) and one checkpoint agent per simulated node. The oracle is the
// simulator's state: the counter a restored container resumed at must be
// the counter saved in the checkpoint image the move used (read back from
// the registry), never a value the controller reports.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

const (
	moveTimeout = 3 * time.Minute
	// stateBytes is the simulated memory of the test pods: small, so a
	// checkpoint takes well under a second and the schedule is the clock.
	stateBytes = 1 << 20
	container  = "main"
)

var migrationLogs = append(logsFor(framework.Members...), "interpreter-webhook", "checkpoint-agent-member1", "checkpoint-agent-member2")

// protectedOnMember1 creates a workload (Deployment or
// StatefulSet) with simulated state, a PropagationPolicy allowing
// `clusters` (member2 cordoned while it is scheduled, so it lands on
// member1), and a CheckpointPolicy; it waits until the workload runs on
// member1 and the restore is armed with a verified checkpoint.
func protectedOnMember1(t *testing.T, ns string, w client.Object, interval time.Duration, onImpossible v1alpha1.RestoreImpossibleAction, clusters []string) *v1alpha1.CheckpointPolicy {
	t.Helper()
	if !hasState(w) {
		framework.WithState(w, stateBytes)
	}
	pp := framework.PropagationPolicy(ns, "place", clusters, w)
	if len(clusters) > 1 {
		env.Cordon(t, framework.Member2)
	}
	gvk := w.GetObjectKind().GroupVersionKind()
	kind := gvk.Kind
	env.Create(t, w, pp)
	w.GetObjectKind().SetGroupVersionKind(gvk) // Create decodes the answer without it
	framework.Eventually(t, scheduleTimeout, "bound to member1", boundTo(ns, kind, w.GetName(), framework.Member1))
	framework.Eventually(t, scheduleTimeout, "pods Running on member1", env.PodsRunning(framework.Member1, ns, w.GetName(), replicasOf(w)))
	if len(clusters) > 1 {
		env.Uncordon(t, framework.Member2)
	}
	cp := framework.CheckpointPolicy(ns, "protect", interval, onImpossible, w)
	env.Create(t, cp)
	framework.Eventually(t, moveTimeout, "restore armed with a verified checkpoint", armed(ns, cp.Name, w.GetName()))
	return cp
}

// hasState says whether a test workload's pods already have a simulated
// memory size (framework.WithState).
func hasState(w client.Object) bool {
	var a map[string]string
	switch o := w.(type) {
	case *appsv1.StatefulSet:
		a = o.Spec.Template.Annotations
	case *appsv1.Deployment:
		a = o.Spec.Template.Annotations
	}
	_, ok := a[nodesim.MemoryBytesAnnotation]
	return ok
}

// replicasOf is a test workload's replica count.
func replicasOf(w client.Object) int {
	switch o := w.(type) {
	case *appsv1.StatefulSet:
		return int(*o.Spec.Replicas)
	case *appsv1.Deployment:
		return int(*o.Spec.Replicas)
	}
	return 1
}

func armed(ns, policy, workload string) framework.Check { return env.Armed(ns, policy, workload) }

// toMember2 is a person's Migration moving a workload to member2.
func toMember2(ns, kind, name string) *v1alpha1.Migration {
	return framework.ManualMigration(ns, "to-member2", kind, name, framework.Member2)
}

func getMigration(ctx context.Context, ns, name string) (*v1alpha1.Migration, error) {
	return env.Migration(ctx, ns, name)
}

func migrationPhase(ns, name string, want v1alpha1.MigrationPhase) framework.Check {
	return env.MigrationPhase(ns, name, want)
}

// onlyMigration waits for exactly one Migration of a workload and returns it.
func onlyMigration(t *testing.T, ns string, trigger ...v1alpha1.MigrationTrigger) *v1alpha1.Migration {
	t.Helper()
	var got *v1alpha1.Migration
	framework.Eventually(t, moveTimeout, "one Migration recorded", func(ctx context.Context) (bool, string, error) {
		var l v1alpha1.MigrationList
		if err := env.Karmada.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return false, "", err
		}
		var saw []string
		for i := range l.Items {
			saw = append(saw, fmt.Sprintf("%s trigger=%s phase=%s", l.Items[i].Name, l.Items[i].Spec.Trigger, l.Items[i].Status.Phase))
		}
		if len(l.Items) != 1 {
			return false, strings.Join(saw, "; "), nil
		}
		got = &l.Items[0]
		return len(trigger) == 0 || slices.Contains(trigger, got.Spec.Trigger), strings.Join(saw, "; "), nil
	})
	return got
}

// restoredOn checks the oracle: one container of the app runs on the
// member's simulated node, restored from `image`.
func restoredOn(cluster, ns, app, image string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		st, err := appState(ctx, cluster, ns, app)
		if err != nil {
			return false, "", err
		}
		return st.Running && st.RestoredFrom == image, fmt.Sprintf("%s: running=%t restoredFrom=%q restoredCounter=%d counter=%d reason=%q",
			cluster, st.Running, st.RestoredFrom, st.RestoredCounter, st.Counter, st.Reason), nil
	}
}

// appState is the simulator's state of the app's only container on a member.
func appState(ctx context.Context, cluster, ns, app string) (nodesim.ContainerState, error) {
	var pods corev1.PodList
	if err := env.Members[cluster].List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		return nodesim.ContainerState{}, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return nodesim.ContainerState{}, fmt.Errorf("%d live pods of %s on %s", len(live), app, cluster)
	}
	return podState(ctx, cluster, ns, live[0].Name)
}

// podState is the simulator's state of one pod's container on a member.
func podState(ctx context.Context, cluster, ns, pod string) (nodesim.ContainerState, error) {
	list, err := env.NodeState(ctx, cluster, ns, pod, container)
	if err != nil {
		return nodesim.ContainerState{}, err
	}
	if len(list) != 1 {
		return nodesim.ContainerState{}, fmt.Errorf("node of %s reports %d containers for %s/%s", cluster, len(list), pod, container)
	}
	return list[0], nil
}

// checkpointByName reads a Checkpoint from the Karmada API.
func checkpointByName(ctx context.Context, ns, name string) (*v1alpha1.Checkpoint, error) {
	cp := &v1alpha1.Checkpoint{}
	err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp)
	return cp, err
}

// verifyRestoredState is the oracle's last word: the container on the
// destination resumed at exactly the counter (and memory) saved in the
// checkpoint image.
func verifyRestoredState(t *testing.T, cluster, ns, app, image string) nodesim.SavedState {
	t.Helper()
	saved, err := framework.SavedState(t.Context(), image)
	if err != nil {
		t.Fatalf("read the checkpoint image: %v", err)
	}
	st, err := appState(t.Context(), cluster, ns, app)
	if err != nil {
		t.Fatal(err)
	}
	return checkRestoredState(t, cluster, st, saved, image)
}

// checkRestoredState compares a container's state with the state saved in
// the image it should have restored.
func checkRestoredState(t *testing.T, cluster string, st nodesim.ContainerState, saved nodesim.SavedState, image string) nodesim.SavedState {
	t.Helper()
	if st.RestoredFrom != image || st.RestoredCounter != saved.Counter || st.RestoredMemorySHA256 != saved.MemorySHA256 {
		t.Fatalf("%s restored %q at counter %d (memory %s); the image %s holds counter %d (memory %s)",
			cluster, st.RestoredFrom, st.RestoredCounter, st.RestoredMemorySHA256, image, saved.Counter, saved.MemorySHA256)
	}
	t.Logf("%s resumed at counter %d = the counter saved in %s (checkpointed at %s)", cluster, st.RestoredCounter, image, saved.CheckpointedAt.Format(time.RFC3339Nano))
	return saved
}

func inOrder(got []v1alpha1.MigrationPhase, want ...v1alpha1.MigrationPhase) bool {
	return slices.Equal(got, want)
}

// TestMigrationManualMove: a person's Migration moves a protected
// Deployment to member2; its phases are observed in order; member2's pod
// resumes from the state of the Migration's checkpoint. Then restore once
// as docs/design-migration.md defines it.
func TestMigrationManualMove(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-mig-manual")
	deploy := framework.Deployment(ns, "web", 1)
	protectedOnMember1(t, ns, deploy, 30*time.Second, "", framework.Members)
	phases := env.WatchMigrations(t, ns)

	mig := toMember2(ns, "Deployment", "web")
	env.Create(t, mig)
	framework.Eventually(t, moveTimeout, "Migration Restored", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	m, err := getMigration(t.Context(), ns, mig.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := phases.Phases(mig.Name); !inOrder(got, v1alpha1.MigrationCheckpointing, v1alpha1.MigrationArmed, v1alpha1.MigrationRestoring, v1alpha1.MigrationRestored) {
		t.Fatalf("phases observed %v, want Checkpointing, Armed, Restoring, Restored", got)
	} else {
		t.Logf("phases observed in order: %v; durations checkpoint=%v restore=%v total=%v", got, m.Status.Durations.Checkpoint, m.Status.Durations.Restore, m.Status.Durations.Total)
	}
	if len(m.Status.Checkpoints) != 1 {
		t.Fatalf("Migration records %d checkpoints, want 1: %+v", len(m.Status.Checkpoints), m.Status.Checkpoints)
	}
	used := m.Status.Checkpoints[0]
	cp, err := checkpointByName(t.Context(), ns, used.Name)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Labels["stateshift.io/migration"] != mig.Name || cp.CreationTimestamp.Before(&m.CreationTimestamp) {
		t.Errorf("the Migration used %s (labels %v, created %s), not a fresh checkpoint of its own", cp.Name, cp.Labels, cp.CreationTimestamp)
	}
	image := used.Images[container]
	framework.Eventually(t, moveTimeout, "member2 runs restored from the Migration's image", restoredOn(framework.Member2, ns, "web", image))
	framework.Eventually(t, moveTimeout, "member1 runs nothing", env.NoPods(framework.Member1, ns, "web"))
	verifyRestoredState(t, framework.Member2, ns, "web", image)

	// Restore once (docs/design-migration.md): the destination, healthy,
	// joins the plan's exclude list, so the plan no longer rewrites it...
	framework.Eventually(t, moveTimeout, "the plan excludes member2 once it runs restored", func(ctx context.Context) (bool, string, error) {
		op := &policyv1alpha1.OverridePolicy{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stateshift-restore-deployment-web"}, op); err != nil {
			return false, "", err
		}
		var ex []string
		for _, r := range op.Spec.OverrideRules {
			if r.TargetCluster != nil {
				ex = append(ex, r.TargetCluster.ExcludeClusters...)
			}
		}
		return slices.Contains(ex, framework.Member2), fmt.Sprintf("exclude=%v armed=%s", ex, op.Annotations["stateshift.io/restored-from"]), nil
	})
	// ...a pod re-created after that (deleted, evicted, node lost) starts
	// from the template's image, not from the old checkpoint (member2's
	// pod-restore webhook reads the completed restore Retain recorded)...
	var pods corev1.PodList
	if err := env.Members[framework.Member2].List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("member2's pods of web: %d, %v", len(pods.Items), err)
	}
	if err := env.Members[framework.Member2].Delete(t.Context(), &pods.Items[0]); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, moveTimeout, "the re-created pod on member2 starts cold", func(ctx context.Context) (bool, string, error) {
		var l corev1.PodList
		if err := env.Members[framework.Member2].List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{"app": "web"}); err != nil {
			return false, "", err
		}
		for _, p := range l.Items {
			if p.UID == pods.Items[0].UID || p.DeletionTimestamp != nil {
				continue
			}
			st, err := podState(ctx, framework.Member2, ns, p.Name)
			if err != nil {
				return false, err.Error(), nil
			}
			return st.Running && st.RestoredFrom == "" && st.Image == framework.TestImage,
				fmt.Sprintf("%s running=%t image=%s restoredFrom=%q cold-start=%q", p.Name, st.Running, st.Image, st.RestoredFrom, p.Annotations["stateshift.io/cold-start"]), nil
		}
		return false, "no new pod yet", nil
	})
	// ...the next scheduled checkpoint (of member2's pod) re-arms future
	// moves with the NEW state...
	framework.Eventually(t, moveTimeout, "re-armed from a checkpoint taken on member2 after the restore", func(ctx context.Context) (bool, string, error) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "protect"}, p); err != nil {
			return false, "", err
		}
		for _, w := range p.Status.Workloads {
			for _, pod := range w.Pods {
				if pod.Cluster == framework.Member2 && pod.Checkpoint != "" && pod.Checkpoint == w.ArmedCheckpoint && pod.Checkpoint != used.Name {
					return true, fmt.Sprintf("armed %s from member2's pod %s", w.ArmedCheckpoint, pod.Pod), nil
				}
			}
			return false, fmt.Sprintf("armed=%s pods=%+v", w.ArmedCheckpoint, w.Pods), nil
		}
		return false, "no workload in the policy's status", nil
	})
	// ...and a template change by the user drops the restore: the new pod
	// starts from the template's image, cold, not from the old checkpoint.
	// A person's move lives in the binding only: Karmada's detector copies
	// the PropagationPolicy's placement back on a template change, so the
	// user makes the move permanent first, as the README says.
	pp := &policyv1alpha1.PropagationPolicy{}
	if err := env.Karmada.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "place"}, pp); err != nil {
		t.Fatal(err)
	}
	pp.Spec.Placement.ClusterAffinity.ClusterNames = []string{framework.Member2}
	if err := env.Karmada.Update(t.Context(), pp); err != nil {
		t.Fatalf("make the move permanent: %v", err)
	}
	d := deploy.DeepCopy()
	if err := env.Karmada.Get(t.Context(), client.ObjectKeyFromObject(deploy), d); err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "E2E_TEMPLATE_CHANGE", Value: "1"})
	if err := env.Karmada.Update(t.Context(), d); err != nil {
		t.Fatalf("update the template: %v", err)
	}
	framework.Eventually(t, moveTimeout, "after a template change member2's pod runs the template image, cold", func(ctx context.Context) (bool, string, error) {
		st, err := appState(ctx, framework.Member2, ns, "web")
		if err != nil {
			return false, "", err
		}
		return st.Running && st.RestoredFrom == "" && st.Image == framework.TestImage,
			fmt.Sprintf("running=%t image=%s restoredFrom=%q", st.Running, st.Image, st.RestoredFrom), nil
	})
	if ok, saw, err := boundTo(ns, "Deployment", "web", framework.Member2)(t.Context()); err != nil || !ok {
		t.Fatalf("after the template change: %s %v", saw, err)
	}
}

// TestMigrationCordonThenReschedule: `karmadactl cordon member1` makes
// stateshift take a fresh checkpoint (a Cordon Migration) and arm it; the
// reschedule that moves a workload off a cordoned cluster in Karmada
// v1.18.2 is a NoExecute taint (graceful eviction: the old Work stays
// until the new copy is healthy); a WorkloadRebalancer does not move it
// (TestWorkloadRebalancerDoesNotMoveWorkloadOffCordonedMember), and a
// PropagationPolicy change deletes the old Work at once, without waiting.
func TestMigrationCordonThenReschedule(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-mig-cordon")
	deploy := framework.Deployment(ns, "web", 1)
	protectedOnMember1(t, ns, deploy, 30*time.Second, "", framework.Members)
	phases := env.WatchMigrations(t, ns)

	// karmadactl cordon sets no timeAdded on its NoSchedule taint (Karmada
	// v1.18.2 stamps only NoExecute taints): the cordon's time is the
	// moment just before the call, truncated to the API's one second.
	cordonedAt := time.Now().Truncate(time.Second)
	env.Cordon(t, framework.Member1)
	c1, err := env.Cluster(t.Context(), framework.Member1)
	if err != nil {
		t.Fatal(err)
	}
	for _, taint := range c1.Spec.Taints {
		if taint.Key == clusterv1alpha1.TaintClusterUnscheduler && taint.TimeAdded != nil {
			cordonedAt = taint.TimeAdded.Time
		}
	}
	m := onlyMigration(t, ns, v1alpha1.TriggerCordon)
	framework.Eventually(t, moveTimeout, "Cordon Migration Armed", migrationPhase(ns, m.Name, v1alpha1.MigrationArmed))
	m, err = getMigration(t.Context(), ns, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Status.Checkpoints) != 1 {
		t.Fatalf("Migration records %d checkpoints: %+v", len(m.Status.Checkpoints), m.Status.Checkpoints)
	}
	fresh, err := checkpointByName(t.Context(), ns, m.Status.Checkpoints[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	// API times have a resolution of one second: "after" is "not before".
	if fresh.CreationTimestamp.Time.Before(cordonedAt) || fresh.Status.Phase != v1alpha1.CheckpointSucceeded {
		t.Fatalf("checkpoint %s (created %s, %s) is not a fresh one taken after the cordon (%s)", fresh.Name, fresh.CreationTimestamp, fresh.Status.Phase, cordonedAt)
	}
	verifiedAt := fresh.Status.CompletionTime.Time
	t.Logf("fresh checkpoint %s created %s (cordon at %s), verified at %s", fresh.Name, fresh.CreationTimestamp.Format(time.RFC3339), cordonedAt.Format(time.RFC3339), verifiedAt.Format(time.RFC3339))
	framework.Consistently(t, 5*time.Second, "cordon and checkpoint alone move nothing", all(
		boundTo(ns, "Deployment", "web", framework.Member1),
		env.PodsRunning(framework.Member1, ns, "web", 1),
	))

	// The reschedule.
	env.Taint(t, framework.Member1, "stateshift-e2e=reschedule:NoExecute")
	image := m.Status.Checkpoints[0].Images[container]
	var member1GoneAt time.Time
	framework.Eventually(t, moveTimeout, "member2 runs restored from the fresh checkpoint; member1's copy removed", func(ctx context.Context) (bool, string, error) {
		if member1GoneAt.IsZero() {
			if ok, _, _ := workGone(framework.Member1, ns, "Deployment", "web")(ctx); ok {
				member1GoneAt = time.Now()
			}
		}
		// The Work's removal is part of the wait: member1's pods can be
		// gone, and the move restored, a poll before the Work is.
		return all(restoredOn(framework.Member2, ns, "web", image), env.NoPods(framework.Member1, ns, "web"),
			migrationPhase(ns, m.Name, v1alpha1.MigrationRestored), func(context.Context) (bool, string, error) {
				return !member1GoneAt.IsZero(), "member1's Work not yet removed", nil
			})(ctx)
	})
	if !member1GoneAt.After(verifiedAt) {
		t.Fatalf("member1's Work was gone at %s, before the image was verified at %s", member1GoneAt, verifiedAt)
	}
	t.Logf("member1's Work removed at %s, %.1fs after the image was verified", member1GoneAt.Format(time.RFC3339), member1GoneAt.Sub(verifiedAt).Seconds())
	verifyRestoredState(t, framework.Member2, ns, "web", image)
	if got := phases.Phases(m.Name); !inOrder(got, v1alpha1.MigrationCheckpointing, v1alpha1.MigrationArmed, v1alpha1.MigrationRestoring, v1alpha1.MigrationRestored) {
		t.Errorf("phases observed %v", got)
	}
}

// TestMigrationTransparentFailover: member1 is lost (its API server and
// simulated node killed, and a NoExecute taint as an operator would set);
// nobody touches a stateshift object; the StatefulSet runs on member2 with
// the state of the latest checkpoint, having lost at most one schedule
// interval (+ slack).
func TestMigrationTransparentFailover(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	const interval = 10 * time.Second
	ns := env.Namespace(t, "e2e-mig-failover")
	sts := framework.StatefulSet(ns, "db", 1)
	protectedOnMember1(t, ns, sts, interval, "", framework.Members)
	// Two scheduled checkpoints: the schedule runs.
	framework.Eventually(t, moveTimeout, "two scheduled checkpoints verified", func(ctx context.Context) (bool, string, error) {
		cps, err := env.Checkpoints(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		n := 0
		for _, c := range cps {
			if c.Status.Phase == v1alpha1.CheckpointSucceeded {
				n++
			}
		}
		return n >= 2, fmt.Sprintf("%d succeeded of %d", n, len(cps)), nil
	})

	// Lose member1. The last counter member1's node reports is the state
	// the application had when it was lost.
	before, err := appState(t.Context(), framework.Member1, ns, "db")
	if err != nil {
		t.Fatal(err)
	}
	lostAt := time.Now()
	env.StopComponents(t, "nodesim-member1", "member1-apiserver")
	env.Taint(t, framework.Member1, "stateshift-e2e=lost:NoExecute")
	t.Logf("member1 lost at counter %d", before.Counter)

	// The latest verified checkpoint when member1 was lost is the one the
	// restore must use (nothing can checkpoint member1 any more).
	var latest *v1alpha1.Checkpoint
	cps, err := env.Checkpoints(t.Context(), ns, "StatefulSet", "db")
	if err != nil {
		t.Fatal(err)
	}
	for i := range cps {
		c := &cps[i]
		if c.Status.Phase == v1alpha1.CheckpointSucceeded && c.Labels["stateshift.io/cluster"] == framework.Member1 &&
			(latest == nil || c.Status.CompletionTime.After(latest.Status.CompletionTime.Time) ||
				(c.Status.CompletionTime.Equal(latest.Status.CompletionTime) && c.Name > latest.Name)) {
			latest = c
		}
	}
	if latest == nil {
		t.Fatal("no verified checkpoint of member1's pod")
	}
	framework.Eventually(t, 2*moveTimeout, "db runs on member2, restored", func(ctx context.Context) (bool, string, error) {
		st, err := appState(ctx, framework.Member2, ns, "db")
		if err != nil {
			return false, "", err
		}
		return st.Running && st.RestoredFrom != "", fmt.Sprintf("running=%t restoredFrom=%q reason=%q message=%q", st.Running, st.RestoredFrom, st.Reason, st.Message), nil
	})
	st, err := appState(t.Context(), framework.Member2, ns, "db")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("db runs on member2 %.1fs after member1 was lost", time.Since(lostAt).Seconds())
	// The latest checkpoint at loss time, or (equally valid) a later one
	// whose agent finished the push while member1 went down.
	used := ""
	for _, c := range cps {
		for _, cc := range c.Status.Containers {
			if cc.Image == st.RestoredFrom {
				used = c.Name
			}
		}
	}
	if used != latest.Name {
		t.Fatalf("member2 restored %s (checkpoint %q), the latest verified checkpoint was %s (%s)", st.RestoredFrom, used, latest.Name, latest.Status.Containers[0].Image)
	}
	saved := verifyRestoredState(t, framework.Member2, ns, "db", st.RestoredFrom)
	// Lost window: a checkpoint is due `interval` after the previous one
	// completed, and freezes the counter when the kubelet dumps it; the
	// counter grows one per second. Slack: the checkpoint's own duration
	// (< 1 s at 1 MiB) plus the controller's requeue and the agent's
	// pickup (~2 s) plus one second of counter granularity: 5 s.
	const slack = 5
	lost := int64(before.Counter) - int64(saved.Counter)
	t.Logf("lost window: %d s of state (counter %d at loss, %d restored; interval %s)", lost, before.Counter, saved.Counter, interval)
	if lost < 0 || lost > int64(interval/time.Second)+slack {
		t.Fatalf("lost %d s of state, want 0..%d", lost, int64(interval/time.Second)+slack)
	}
	// The controller recorded the move by itself.
	m := onlyMigration(t, ns)
	framework.Eventually(t, moveTimeout, "the recorded Migration is Restored", migrationPhase(ns, m.Name, v1alpha1.MigrationRestored))
	t.Logf("Migration %s recorded with trigger %s", m.Name, m.Spec.Trigger)
	rb, err := env.Binding(t.Context(), ns, "StatefulSet", "db")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binding: clusters=%v gracefulEvictionTasks=%d (the member1 Work stays while member1 is unreachable: %v)",
		framework.BoundClusters(rb), len(rb.Spec.GracefulEvictionTasks), workStillThere(t, framework.Member1, ns, "StatefulSet", "db"))
}

func workStillThere(t *testing.T, cluster, ns, kind, name string) bool {
	_, err := env.Work(t.Context(), cluster, ns, kind, name)
	return !apierrors.IsNotFound(err)
}

// TestMigrationDestinationCannotRestore: member2 labelled
// stateshift.io/restore=false. ColdStart (the default): the move goes
// ahead cold, the Migration FellBack with its condition and a ColdStart
// Event. Hold: the move is held (the Migration stays Checkpointing with
// "held:", a MoveHeld Event) and the workload stays on member1.
func TestMigrationDestinationCannotRestore(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	env.LabelCluster(t, framework.Member2, "stateshift.io/restore", "false")

	for _, mode := range []v1alpha1.RestoreImpossibleAction{v1alpha1.RestoreImpossibleColdStart, v1alpha1.RestoreImpossibleHold} {
		t.Run(string(mode), func(t *testing.T) {
			ns := env.Namespace(t, "e2e-mig-"+strings.ToLower(string(mode)))
			deploy := framework.Deployment(ns, "web", 1)
			protectedOnMember1(t, ns, deploy, 30*time.Second, mode, framework.Members)
			mig := toMember2(ns, "Deployment", "web")
			env.Create(t, mig)
			switch mode {
			case v1alpha1.RestoreImpossibleColdStart:
				framework.Eventually(t, moveTimeout, "Migration FellBack", migrationPhase(ns, mig.Name, v1alpha1.MigrationFellBack))
				m, err := getMigration(t.Context(), ns, mig.Name)
				if err != nil {
					t.Fatal(err)
				}
				c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionFellBack)
				if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "DestinationCannotRestore" {
					t.Fatalf("FellBack condition %+v, want True/DestinationCannotRestore", c)
				}
				framework.Eventually(t, moveTimeout, "ColdStart Event on the Deployment", eventOn(ns, "Deployment", "web", "ColdStart"))
				framework.Eventually(t, moveTimeout, "member2 runs web cold", func(ctx context.Context) (bool, string, error) {
					st, err := appState(ctx, framework.Member2, ns, "web")
					if err != nil {
						return false, "", err
					}
					return st.Running && st.RestoredFrom == "" && st.Image == framework.TestImage,
						fmt.Sprintf("running=%t image=%s restoredFrom=%q", st.Running, st.Image, st.RestoredFrom), nil
				})
			case v1alpha1.RestoreImpossibleHold:
				framework.Eventually(t, moveTimeout, "Migration held", func(ctx context.Context) (bool, string, error) {
					m, err := getMigration(ctx, ns, mig.Name)
					if err != nil {
						return false, "", err
					}
					return m.Status.Phase == v1alpha1.MigrationCheckpointing && strings.HasPrefix(m.Status.Message, "held: "),
						fmt.Sprintf("phase=%s message=%q", m.Status.Phase, m.Status.Message), nil
				})
				framework.Eventually(t, moveTimeout, "MoveHeld Event on the Deployment", eventOn(ns, "Deployment", "web", "MoveHeld"))
				framework.Consistently(t, 10*time.Second, "the held workload stays on member1", all(
					boundTo(ns, "Deployment", "web", framework.Member1),
					env.PodsRunning(framework.Member1, ns, "web", 1),
					env.NoPods(framework.Member2, ns, "web"),
				))
				// Deleting the Migration releases the hold.
				if err := env.Karmada.Delete(t.Context(), mig); err != nil {
					t.Fatal(err)
				}
				framework.Eventually(t, moveTimeout, "hold released after the Migration is deleted", func(ctx context.Context) (bool, string, error) {
					rb, err := env.Binding(ctx, ns, "Deployment", "web")
					if err != nil {
						return false, "", err
					}
					held := rb.Spec.Suspension != nil && rb.Spec.Suspension.Scheduling != nil && *rb.Spec.Suspension.Scheduling
					return !held, fmt.Sprintf("suspension=%+v annotations=%v", rb.Spec.Suspension, rb.Annotations), nil
				})
			}
		})
	}
}

// eventOn checks for an Event with the reason on a workload in the Karmada API.
func eventOn(ns, kind, name, reason string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		var l corev1.EventList
		if err := env.Karmada.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return false, "", err
		}
		var saw []string
		for _, e := range l.Items {
			if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
				saw = append(saw, e.Reason)
				if e.Reason == reason {
					return true, e.Message, nil
				}
			}
		}
		return false, fmt.Sprintf("events on %s %s: %v", kind, name, saw), nil
	}
}
