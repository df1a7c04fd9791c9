package framework

// Checks and steps both end-to-end suites use: test/e2e (stateshift run as
// processes beside Karmada) and test/install (stateshift installed with its
// Helm chart).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// All passes when every check passes, and says what each saw.
func All(checks ...Check) Check {
	return func(ctx context.Context) (bool, string, error) {
		var saw []string
		for _, c := range checks {
			ok, s, err := c(ctx)
			saw = append(saw, s)
			if err != nil || !ok {
				return false, strings.Join(saw, " | "), err
			}
		}
		return true, strings.Join(saw, " | "), nil
	}
}

// BoundTo checks a workload's ResourceBinding is scheduled to exactly `want`.
func (e *Env) BoundTo(ns, kind, name string, want ...string) Check {
	return func(ctx context.Context) (bool, string, error) {
		rb, err := e.Binding(ctx, ns, kind, name)
		if err != nil {
			return false, "", err
		}
		got := BoundClusters(rb)
		return slices.Equal(got, want), fmt.Sprintf("spec.clusters=%v gracefulEvictionTasks=%d", got, len(rb.Spec.GracefulEvictionTasks)), nil
	}
}

// Armed checks that a CheckpointPolicy reports the workload armed.
func (e *Env) Armed(ns, policy, workload string) Check {
	return func(ctx context.Context) (bool, string, error) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := e.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy}, p); err != nil {
			return false, "", err
		}
		for _, w := range p.Status.Workloads {
			if w.Name == workload {
				return w.Armed, fmt.Sprintf("armed=%t checkpoint=%s message=%q", w.Armed, w.ArmedCheckpoint, w.Message), nil
			}
		}
		return false, fmt.Sprintf("status %+v", p.Status), nil
	}
}

// Migration reads a Migration from the Karmada API.
func (e *Env) Migration(ctx context.Context, ns, name string) (*v1alpha1.Migration, error) {
	m := &v1alpha1.Migration{}
	err := e.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)
	return m, err
}

// MigrationPhase checks that a Migration reached phase `want`.
func (e *Env) MigrationPhase(ns, name string, want v1alpha1.MigrationPhase) Check {
	return func(ctx context.Context) (bool, string, error) {
		m, err := e.Migration(ctx, ns, name)
		if err != nil {
			return false, "", err
		}
		return m.Status.Phase == want, fmt.Sprintf("%s phase=%s message=%q", name, m.Status.Phase, m.Status.Message), nil
	}
}

// ManualMigration is a person's Migration moving a workload to `to`.
func ManualMigration(ns, name, kind, workload, to string) *v1alpha1.Migration {
	return &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: kind, Name: workload},
			DestinationCluster: to, Trigger: v1alpha1.TriggerManual,
		},
	}
}

// MemBefore reads a memstate pod's state and writes a fresh note into its
// memory; it returns the state with that note.
func (e *Env) MemBefore(t *testing.T, cluster, ns, pod string) MemState {
	t.Helper()
	note := pod + "-" + rand.String(8)
	if err := e.SetMemNote(t.Context(), cluster, ns, pod, note); err != nil {
		t.Fatal(err)
	}
	st, err := e.QueryMemState(t.Context(), cluster, ns, pod)
	if err != nil {
		t.Fatal(err)
	}
	if st.Note != note || st.Digest != st.DigestAtStart {
		t.Fatalf("%s %s/%s before the move: %+v (wrote note %q)", cluster, ns, pod, st, note)
	}
	t.Logf("%s %s/%s before the move: counter %d, memory %s, started %d, note %q", cluster, ns, pod, st.Counter, st.Digest, st.StartedUnix, st.Note)
	return st
}

// SameProcess checks that the process answering on cluster is the one
// `before` described, restored: the same start time, the same random
// memory (recomputed), the same note, a counter that went on from at least
// `minCounter`.
func (e *Env) SameProcess(cluster, ns, pod string, before MemState, minCounter uint64) Check {
	return func(ctx context.Context) (bool, string, error) {
		st, err := e.QueryMemState(ctx, cluster, ns, pod)
		if err != nil {
			return false, "", err
		}
		ok := st.StartedUnix == before.StartedUnix && st.DigestAtStart == before.DigestAtStart &&
			st.Digest == before.DigestAtStart && st.Note == before.Note && st.Counter >= minCounter
		return ok, fmt.Sprintf("%s %s/%s: counter %d (want >= %d), memory %s (want %s), started %d (want %d), note %q (want %q)",
			cluster, ns, pod, st.Counter, minCounter, st.Digest, before.DigestAtStart, st.StartedUnix, before.StartedUnix, st.Note, before.Note), nil
	}
}

// RealRestored checks that a member's only pod of app runs on its real node
// with a checkpoint image (the policies' repositories end in /e2e).
func (e *Env) RealRestored(cluster, ns, app string) Check {
	return func(ctx context.Context) (bool, string, error) {
		p, err := e.LivePod(ctx, cluster, ns, app)
		if err != nil {
			return false, "", err
		}
		img := p.Spec.Containers[0].Image
		running := len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
		return running && p.Spec.NodeName == RealNodeName(cluster) && strings.Contains(img, "/e2e/"),
			fmt.Sprintf("%s on %s image %s running=%t %v", p.Name, p.Spec.NodeName, img, running, p.Status.ContainerStatuses), nil
	}
}
