//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/podrestore"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

// TestMigrationStatefulSetPodsRestoreTheirOwn: a StatefulSet with two
// replicas moves to member2; each pod resumes from ITS OWN checkpoint (the
// template names one image per pod; member2's pod-restore webhook sets each
// pod's from stateshift.io/pod-images). Then restore once per pod: after
// the restore completed, a re-created db-1 starts cold while db-0 keeps
// running restored. Last, with member2's webhook stopped, a re-created pod
// of the completed restore is still admitted (review finding 9).
func TestMigrationStatefulSetPodsRestoreTheirOwn(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, append(migrationLogs, "pod-restore-member1", "pod-restore-member2")...)
	ns := env.Namespace(t, "e2e-mig-sts2")
	sts := framework.StatefulSet(ns, "db", 2)
	protectedOnMember1(t, ns, sts, 30*time.Second, "", framework.Members)

	mig := toMember2(ns, "StatefulSet", "db")
	env.Create(t, mig)
	framework.Eventually(t, moveTimeout, "Migration Restored", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	m, err := getMigration(t.Context(), ns, mig.Name)
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, c := range m.Status.Checkpoints {
		images[c.Pod] = c.Images[container]
	}
	if len(images) != 2 || images["db-0"] == "" || images["db-1"] == "" || images["db-0"] == images["db-1"] {
		t.Fatalf("the Migration should use one checkpoint per pod, with different images: %+v", m.Status.Checkpoints)
	}

	for _, pod := range []string{"db-0", "db-1"} {
		framework.Eventually(t, moveTimeout, pod+" on member2 restored from its own image", podRestoredFrom(framework.Member2, ns, pod, images[pod]))
		saved, err := framework.SavedState(t.Context(), images[pod])
		if err != nil {
			t.Fatalf("read %s's checkpoint image: %v", pod, err)
		}
		st, err := podState(t.Context(), framework.Member2, ns, pod)
		if err != nil {
			t.Fatal(err)
		}
		checkRestoredState(t, framework.Member2, st, saved, images[pod])
	}
	framework.Eventually(t, moveTimeout, "member1 runs nothing", env.NoPods(framework.Member1, ns, "db"))

	// Restore once: the plan is withdrawn from member2 once it runs
	// restored, and Retain records the completed restore on member2's
	// StatefulSet (metadata only: no rollout)...
	framework.Eventually(t, moveTimeout, "member2's StatefulSet records the completed restore", func(ctx context.Context) (bool, string, error) {
		s := &appsv1.StatefulSet{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, s); err != nil {
			return false, "", err
		}
		done := s.Annotations[restore.AnnotationRestoreCompleted]
		return done != "" && done == s.Annotations[restore.AnnotationRestoredFrom], fmt.Sprintf("annotations %v", s.Annotations), nil
	})
	// ...so a re-created pod does not bring back the old state: it starts
	// from the template's image, and says why.
	before, err := podState(t.Context(), framework.Member2, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	recreateStartsCold(t, ns, "db-1", "db-1 re-created on member2 starts cold", "restore once")
	after, err := podState(t.Context(), framework.Member2, ns, "db-0")
	if err != nil {
		t.Fatal(err)
	}
	if after.RestoredFrom != images["db-0"] || after.RestoredCounter != before.RestoredCounter || after.Counter < before.Counter {
		t.Fatalf("db-0 was disturbed by db-1's re-creation: before %+v after %+v", before, after)
	}

	// A completed restore no longer needs the webhook (review finding 9):
	// member2's pod-restore process listed it in its webhook
	// configuration's conditions, so with the process stopped a re-created
	// db-1 is still admitted, from the template's own image.
	var completedKey string
	framework.Eventually(t, moveTimeout, "member2's webhook configuration lists the completed restore", func(ctx context.Context) (bool, string, error) {
		s := &appsv1.StatefulSet{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, s); err != nil {
			return false, "", err
		}
		completedKey = ns + "/" + s.Annotations[restore.AnnotationRestoreCompleted]
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Name: "stateshift-pod-restore"}, cfg); err != nil {
			return false, "", err
		}
		for _, w := range cfg.Webhooks {
			for _, c := range w.MatchConditions {
				if c.Name == podrestore.CompletedCondition {
					return strings.Contains(c.Expression, "'"+completedKey+"'"), fmt.Sprintf("%s: %.200s", w.Name, c.Expression), nil
				}
			}
		}
		return false, "no " + podrestore.CompletedCondition + " condition", nil
	})
	env.StopComponents(t, "pod-restore-member2")
	// Admitted without the webhook: no cold-start annotation to expect.
	recreateStartsCold(t, ns, "db-1", "with the webhook down, db-1 of the completed restore "+completedKey+" is re-created from the template's image", "")
	env.StartComponents(t)
	// The template change rule still holds for the whole StatefulSet: the
	// OverridePolicy no longer targets member2.
	op := &policyv1alpha1.OverridePolicy{}
	if err := env.Karmada.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "stateshift-restore-statefulset-db"}, op); err != nil {
		t.Fatal(err)
	}
	for _, r := range op.Spec.OverrideRules {
		if r.TargetCluster != nil && !slices.Contains(r.TargetCluster.ExcludeClusters, framework.Member2) {
			t.Fatalf("the restore plan still targets member2: %+v", r.TargetCluster)
		}
	}
}

// recreateStartsCold deletes a pod on member2 and waits for its
// replacement to run from the template's image, not restored; with reason,
// its cold-start annotation must contain it.
func recreateStartsCold(t *testing.T, ns, pod, what, reason string) {
	t.Helper()
	old := &corev1.Pod{}
	if err := env.Members[framework.Member2].Get(t.Context(), client.ObjectKey{Namespace: ns, Name: pod}, old); err != nil {
		t.Fatal(err)
	}
	if err := env.Members[framework.Member2].Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, moveTimeout, what, func(ctx context.Context) (bool, string, error) {
		p := &corev1.Pod{}
		if err := env.Members[framework.Member2].Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			return false, "", client.IgnoreNotFound(err)
		}
		if p.UID == old.UID {
			return false, "old " + pod + " still there", nil
		}
		st, err := podState(ctx, framework.Member2, ns, pod)
		if err != nil {
			return false, err.Error(), nil
		}
		coldStart := p.Annotations[restore.AnnotationColdStart]
		return st.Running && st.RestoredFrom == "" && st.Image == framework.TestImage && strings.Contains(coldStart, reason),
			fmt.Sprintf("running=%t image=%s restoredFrom=%q cold-start=%q", st.Running, st.Image, st.RestoredFrom, coldStart), nil
	})
}

// podRestoredFrom checks one pod's container on a member runs restored
// from image.
func podRestoredFrom(cluster, ns, pod, image string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		st, err := podState(ctx, cluster, ns, pod)
		if err != nil {
			return false, err.Error(), nil
		}
		return st.Running && st.RestoredFrom == image, fmt.Sprintf("%s/%s: running=%t restoredFrom=%q reason=%q", cluster, pod, st.Running, st.RestoredFrom, st.Reason), nil
	}
}

// TestMigrationTemplateChangeAfterMoveStartsCold: a person moved a
// Deployment to member2 (the move lives in the binding); then the user
// ships a new image. A person's move stays inside the placement (issue
// 12), so the workload stays on member2, whose copy ran restored: it must
// run the NEW image, cold, never the old version's checkpoint (Retain lets
// the user's image change win, the controller disarms checkpoints of the
// old template, and the pod-restore webhook refuses a checkpoint of
// another image).
func TestMigrationTemplateChangeAfterMoveStartsCold(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, append(migrationLogs, "pod-restore-member1", "pod-restore-member2")...)
	ns := env.Namespace(t, "e2e-mig-newimage")
	deploy := framework.Deployment(ns, "web", 1)
	protectedOnMember1(t, ns, deploy, 10*time.Second, "", framework.Members)
	mig := toMember2(ns, "Deployment", "web")
	env.Create(t, mig)
	framework.Eventually(t, moveTimeout, "Migration Restored", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	framework.Eventually(t, moveTimeout, "re-armed from member2 (member1 is a restore target again)", func(ctx context.Context) (bool, string, error) {
		op := &policyv1alpha1.OverridePolicy{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stateshift-restore-deployment-web"}, op); err != nil {
			return false, "", client.IgnoreNotFound(err)
		}
		for _, r := range op.Spec.OverrideRules {
			if r.TargetCluster != nil && slices.Contains(r.TargetCluster.ExcludeClusters, framework.Member2) && !slices.Contains(r.TargetCluster.ExcludeClusters, framework.Member1) {
				return true, fmt.Sprintf("exclude=%v", r.TargetCluster.ExcludeClusters), nil
			}
		}
		return false, "not yet", nil
	})

	const newImage = "docker.io/library/busybox:1.37"
	d := &appsv1.Deployment{}
	if err := env.Karmada.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "web"}, d); err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = newImage
	if err := env.Karmada.Update(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, moveTimeout, "it stays on member2 (inside the placement)", boundTo(ns, "Deployment", "web", framework.Member2))
	framework.Eventually(t, moveTimeout, "member2 runs the new image, cold", func(ctx context.Context) (bool, string, error) {
		st, err := appState(ctx, framework.Member2, ns, "web")
		if err != nil {
			return false, err.Error(), nil
		}
		return st.Running && st.Image == newImage && st.RestoredFrom == "",
			fmt.Sprintf("running=%t image=%s restoredFrom=%q", st.Running, st.Image, st.RestoredFrom), nil
	})
	framework.Consistently(t, 5*time.Second, "member2 keeps running the new image, never a restore", func(ctx context.Context) (bool, string, error) {
		st, err := appState(ctx, framework.Member2, ns, "web")
		if err != nil {
			return false, err.Error(), nil
		}
		return st.Image == newImage && st.RestoredFrom == "", fmt.Sprintf("image=%s restoredFrom=%q", st.Image, st.RestoredFrom), nil
	})
}
