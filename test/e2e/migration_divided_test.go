//go:build e2e

package e2e

// Issue 11 defect 1 against the local Karmada: a StatefulSet Divided 1:1
// over member1 and member2 (each runs its own db-0) loses member1 to a
// cordon and a NoExecute taint. member2 then runs db-0 (its own process,
// never restarted) and a new db-1 that must resume member1's db-0. The
// oracle is the simulator: each container's seed is its process identity
// (a restore carries it over from the image), its container id changes
// with every start.

import (
	"context"
	"fmt"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

// dividedOneToOne places a StatefulSet's replicas one on each member
// (static weights 1:1).
func dividedOneToOne(ns string, sts *policyv1alpha1.ResourceSelector) *policyv1alpha1.PropagationPolicy {
	one := []policyv1alpha1.StaticClusterWeight{
		{TargetCluster: policyv1alpha1.ClusterAffinity{ClusterNames: []string{framework.Member1}}, Weight: 1},
		{TargetCluster: policyv1alpha1.ClusterAffinity{ClusterNames: []string{framework.Member2}}, Weight: 1},
	}
	return &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "divided"},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{*sts},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: framework.Members},
				ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
					ReplicaSchedulingType:     policyv1alpha1.ReplicaSchedulingTypeDivided,
					ReplicaDivisionPreference: policyv1alpha1.ReplicaDivisionPreferenceWeighted,
					WeightPreference:          &policyv1alpha1.ClusterPreferences{StaticWeightList: one},
				},
			},
		},
	}
}

// verifiedOnEachMember waits for a verified checkpoint of db-0 on each member.
func verifiedOnEachMember(ns string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		cps, err := env.Checkpoints(ctx, ns, "StatefulSet", "db")
		if err != nil {
			return false, "", err
		}
		seen := map[string]bool{}
		for _, c := range cps {
			if c.Status.Phase == v1alpha1.CheckpointSucceeded {
				seen[c.Labels["stateshift.io/cluster"]] = true
			}
		}
		return seen[framework.Member1] && seen[framework.Member2], fmt.Sprintf("verified on %v", seen), nil
	}
}

// sameSimProcess checks that pod on cluster runs the process `was` (same seed
// and container id: never restarted, restored from was.RestoredFrom or
// not at all) and moved on from it.
func sameSimProcess(cluster, ns, pod string, was nodesim.ContainerState) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		st, err := podState(ctx, cluster, ns, pod)
		if err != nil {
			return false, "", err
		}
		ok := st.Running && st.Seed == was.Seed && st.ContainerID == was.ContainerID && st.Counter >= was.Counter && st.RestoredFrom == was.RestoredFrom
		return ok, fmt.Sprintf("%s/%s running=%t seed=%d (was %d) id=%.12s (was %.12s) counter=%d (was %d) restoredFrom=%q",
			cluster, pod, st.Running, st.Seed, was.Seed, st.ContainerID, was.ContainerID, st.Counter, was.Counter, st.RestoredFrom), nil
	}
}

// resumedProcess checks that pod on cluster runs the process of seed,
// restored from image.
func resumedProcess(cluster, ns, pod string, seed uint64, image string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		st, err := podState(ctx, cluster, ns, pod)
		if err != nil {
			return false, "", err
		}
		ok := st.Running && st.Seed == seed && st.RestoredFrom == image
		return ok, fmt.Sprintf("%s/%s running=%t seed=%d (want %d) restoredFrom=%q (want %q) reason=%q",
			cluster, pod, st.Running, st.Seed, seed, st.RestoredFrom, image, st.Reason), nil
	}
}

// TestMigrationDividedPlacementKeepsBothStates: after `karmadactl cordon
// member1` and a NoExecute taint, member2 runs both processes: its own
// db-0 untouched, member1's db-0 resumed in member2's db-1 at exactly the
// state of the Cordon Migration's fresh checkpoint; and both stay so once
// the plan is withdrawn (db-0 is not rolled onto the restored template).
func TestMigrationDividedPlacementKeepsBothStates(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-mig-divided")
	sts := framework.WithState(framework.StatefulSet(ns, "db", 2), stateBytes)
	gvk := sts.GetObjectKind().GroupVersionKind()
	env.Create(t, sts, dividedOneToOne(ns, &policyv1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}))
	sts.GetObjectKind().SetGroupVersionKind(gvk) // Create decodes the answer without it
	framework.Eventually(t, scheduleTimeout, "bound 1:1", boundTo(ns, "StatefulSet", "db", framework.Member1, framework.Member2))
	framework.Eventually(t, scheduleTimeout, "db-0 Running on each member", all(
		env.PodsRunning(framework.Member1, ns, "db", 1), env.PodsRunning(framework.Member2, ns, "db", 1)))
	env.Create(t, framework.CheckpointPolicy(ns, "protect", 10*time.Second, "", sts))
	framework.Eventually(t, moveTimeout, "a verified checkpoint on each member", verifiedOnEachMember(ns))
	phases := env.WatchMigrations(t, ns)

	member1DB0, err := podState(t.Context(), framework.Member1, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	member2DB0, err := podState(t.Context(), framework.Member2, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	if member1DB0.Seed == member2DB0.Seed {
		t.Fatalf("the two db-0 share seed %d: the oracle cannot tell them apart", member1DB0.Seed)
	}
	env.Cordon(t, framework.Member1)
	m := onlyMigration(t, ns, v1alpha1.TriggerCordon)
	framework.Eventually(t, moveTimeout, "Cordon Migration Armed", migrationPhase(ns, m.Name, v1alpha1.MigrationArmed))
	env.Taint(t, framework.Member1, "stateshift-e2e=reschedule:NoExecute")
	framework.Eventually(t, 2*moveTimeout, "Cordon Migration Restored", migrationPhase(ns, m.Name, v1alpha1.MigrationRestored))

	m, err = getMigration(t.Context(), ns, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Status.Checkpoints) != 1 || m.Status.Checkpoints[0].Cluster != framework.Member1 || m.Status.Checkpoints[0].Into != "db-1" {
		t.Fatalf("the Migration restores %+v, want member1's db-0 into db-1", m.Status.Checkpoints)
	}
	image := m.Status.Checkpoints[0].Images[container]
	framework.Eventually(t, moveTimeout, "member2 runs both processes; member1 none", all(
		sameSimProcess(framework.Member2, ns, "db-0", member2DB0),
		resumedProcess(framework.Member2, ns, "db-1", member1DB0.Seed, image),
		env.NoPods(framework.Member1, ns, "db")))
	saved, err := framework.SavedState(t.Context(), image)
	if err != nil {
		t.Fatal(err)
	}
	st, err := podState(t.Context(), framework.Member2, ns, "db-1")
	if err != nil {
		t.Fatal(err)
	}
	checkRestoredState(t, framework.Member2, st, saved, image)
	if saved.Seed != member1DB0.Seed || saved.Counter < member1DB0.Counter {
		t.Fatalf("the image holds seed %d counter %d, member1's db-0 was seed %d at counter %d", saved.Seed, saved.Counter, member1DB0.Seed, member1DB0.Counter)
	}
	// The plan is withdrawn from member2 once it runs restored: db-0 must
	// not be rolled onto the restored template then, nor db-1 restarted.
	framework.Consistently(t, 15*time.Second, "both processes stay after the move", all(
		sameSimProcess(framework.Member2, ns, "db-0", member2DB0),
		sameSimProcess(framework.Member2, ns, "db-1", st)))
	t.Logf("member2 runs db-0 (seed %d, its own) and db-1 (seed %d, member1's db-0 resumed at counter %d); phases %v",
		member2DB0.Seed, st.Seed, saved.Counter, phases.Phases(m.Name))
}
