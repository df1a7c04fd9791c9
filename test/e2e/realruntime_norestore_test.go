//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

// realNodeRestore turns checkpoint/restore of a member's real CRI-O on or
// off (hack/local/real-node-restore.sh restarts that CRI-O).
func realNodeRestore(ctx context.Context, cluster, onOff string) error {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(framework.Root(), "hack", "local", "real-node-restore.sh"), cluster, onOff)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("real-node-restore.sh %s %s: %w: %s", cluster, onOff, err, out)
	}
	return nil
}

// TestRealRuntimeDestinationCannotRestore: member2's real CRI-O has
// checkpoint/restore turned off (enable_criu_support = false). Nobody
// labels member2: stateshift learns it from the runtime's own answer. A
// person's move to member2 ends FellBack naming the pods that failed,
// member2 is labelled stateshift.io/restore=false with the reason, and the
// workload runs on member2 cold from its own image (ColdStart, the
// default).
func TestRealRuntimeDestinationCannotRestore(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, realLogs...)
	ns := env.Namespace(t, "e2e-real-norestore")
	before := memOnMember1(t, ns, v1alpha1.BuilderNative)

	if err := realNodeRestore(t.Context(), framework.Member2, "off"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := realNodeRestore(ctx, framework.Member2, "on"); err != nil {
			t.Errorf("restore: %v", err)
		}
		// The controller's mark, removed as an operator does once the
		// runtime can restore again.
		body, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"labels":      map[string]any{v1alpha1.LabelRestore: nil},
			"annotations": map[string]any{v1alpha1.AnnotationRestoreFailure: nil},
		}})
		c, err := env.Cluster(ctx, framework.Member2)
		if err == nil {
			err = env.Karmada.Patch(ctx, c, client.RawPatch(types.MergePatchType, body))
		}
		if err != nil {
			t.Errorf("restore: unmark %s: %v", framework.Member2, err)
		}
	})

	mig := toMember2(ns, "Deployment", "mem")
	env.Create(t, mig)
	framework.Eventually(t, realTimeout, "Migration FellBack", migrationPhase(ns, mig.Name, v1alpha1.MigrationFellBack))
	m, err := getMigration(t.Context(), ns, mig.Name)
	if err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(m.Status.Conditions, v1alpha1.ConditionFellBack)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "RestoreFailed" || !strings.Contains(c.Message, "failed to restore") {
		t.Errorf("FellBack condition %+v, want True/RestoreFailed naming the pods", c)
	}
	t.Logf("Migration: %s", m.Status.Message)

	cl, err := env.Cluster(t.Context(), framework.Member2)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Labels[v1alpha1.LabelRestore] != "false" || !strings.Contains(cl.Annotations[v1alpha1.AnnotationRestoreFailure], "failed to restore") {
		t.Errorf("cluster %s labels %v annotations %v: want %s=false with the reason", framework.Member2, cl.Labels, cl.Annotations, v1alpha1.LabelRestore)
	}

	framework.Eventually(t, realTimeout, "member2 runs mem cold from its own image, member1 none", all(
		func(ctx context.Context) (bool, string, error) {
			p, err := env.LivePod(ctx, framework.Member2, ns, "mem")
			if err != nil {
				return false, "", err
			}
			running := len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
			img := p.Spec.Containers[0].Image
			return running && img == framework.MemstateImage(), fmt.Sprintf("%s image %s running=%t", p.Name, img, running), nil
		},
		env.NoPods(framework.Member1, ns, "mem"),
	))
	pod, err := env.LivePod(t.Context(), framework.Member2, ns, "mem")
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "a new process, not member1's", func(ctx context.Context) (bool, string, error) {
		st, err := env.QueryMemState(ctx, framework.Member2, ns, pod.Name)
		if err != nil {
			return false, "", err
		}
		return st.StartedUnix != before.StartedUnix && st.Note != before.Note,
			fmt.Sprintf("started %d (member1's %d), note %q", st.StartedUnix, before.StartedUnix, st.Note), nil
	})
}
