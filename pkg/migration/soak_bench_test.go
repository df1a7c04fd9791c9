package migration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// soakRounds is how many scheduled checkpoint rounds the soak runs.
const soakRounds = 50

// BenchmarkControllerSoak runs the controller against a real API server
// and registry for 50 scheduled rounds with a rollout every 10 rounds, a
// move between member1 and member2 every 7, and every 5th round an attempt
// that pushed an image and failed (a stray image) before the round's
// checkpoint succeeds, then prints what is left:
//
//	BENCH controller-soak rounds=50 checkpoints_left=<n> manifests_left=<n> dangling_refs=<n> orphans=<n>
//
// checkpoints_left and manifests_left must stay bounded (keep=2 per pod);
// dangling_refs counts Checkpoints (and the armed plan) naming an image
// the registry no longer has; orphans counts manifests no Checkpoint names.
// Both must be 0. Run by make bench (-benchtime 1x).
func BenchmarkControllerSoak(b *testing.B) {
	for range b.N {
		h := startWith(b, harnessOptions{})
		for _, c := range []string{"member1", "member2"} {
			h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: c}})
		}
		h.statefulSet("member1")
		h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Retention.Keep = 2 })
		on := "member1"
		for round := 1; round <= soakRounds; round++ {
			if round%5 == 0 {
				h.soakFailedAttempt(round)
			}
			h.soakRound(round)
			switch {
			case round%10 == 0:
				h.rollout(round)
			case round%7 == 0:
				on = h.soakMove(on)
			}
		}
		h.settle()
		cps, manifests, dangling, orphans := h.soakCounts()
		if dangling != 0 || orphans != 0 {
			b.Errorf("dangling_refs=%d orphans=%d, want 0", dangling, orphans)
		}
		fmt.Printf("BENCH controller-soak rounds=%d checkpoints_left=%d manifests_left=%d dangling_refs=%d orphans=%d\n",
			soakRounds, cps, manifests, dangling, orphans)
	}
}

// soakRound waits for the next scheduled checkpoint and completes it.
func (h *harness) soakRound(round int) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("scheduled round %d", round), 30*time.Second, func() (bool, string) {
		if len(h.agent(true)) > 0 {
			return true, ""
		}
		p := &v1alpha1.CheckpointPolicy{}
		_ = h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p)
		return false, fmt.Sprintf("%+v %v", p.Status.Workloads, p.Status.Conditions)
	})
}

// soakFailedAttempt plays an agent whose next attempt pushed a tagged
// image and then failed: the Checkpoint ends Failed naming it as a stray
// image, which retention must delete (orphans counts it otherwise).
func (h *harness) soakFailedAttempt(round int) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("a checkpoint to fail in round %d", round), 30*time.Second, func() (bool, string) {
		var l v1alpha1.CheckpointList
		must(h.t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
		for i := range l.Items {
			cp := &l.Items[i]
			if cp.IsFinished() {
				continue
			}
			img, err := checkpointImage(cp.Namespace, cp.Spec.PodName, "app")
			must(h.t, err)
			tag, err := name.NewTag(h.reg.Host + "/ckpt/db:" + cp.Name + "-failed")
			must(h.t, err)
			must(h.t, remote.Write(tag, img, remote.WithAuth(h.auth)))
			d, err := img.Digest()
			must(h.t, err)
			now := metav1.Now()
			cp.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointFailed, StartTime: &now, CompletionTime: &now,
				Message:     "pushed image failed verification",
				StrayImages: []v1alpha1.StrayImage{{Container: "app", Image: h.reg.Host + "/ckpt/db@" + d.String(), Attempt: 1, Reason: "VerifyFailed"}}}
			must(h.t, h.c.Status().Update(h.ctx, cp))
			return true, ""
		}
		return false, "no unfinished checkpoint"
	})
}

// rollout changes the template's image and replaces the pod with one of it.
func (h *harness) rollout(round int) {
	h.t.Helper()
	image := fmt.Sprintf("registry.example.com/db:%d", round)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sts := &appsv1.StatefulSet{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "db"}, sts); err != nil {
			return err
		}
		sts.Spec.Template.Spec.Containers[0].Image = image
		return h.c.Update(h.ctx, sts)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "db-0"}, pod); err != nil {
		h.t.Fatal(err)
	}
	pod.Spec.Containers[0].Image = image
	if err := h.c.Update(h.ctx, pod); err != nil {
		h.t.Fatal(err)
	}
}

// soakMove plays Karmada moving db from one member to the other and the
// destination coming up restored, and waits for the Migration to end.
func (h *harness) soakMove(from string) string {
	h.t.Helper()
	to := map[string]string{"member1": "member2", "member2": "member1"}[from]
	op := h.overridePolicy()
	if op == nil {
		return from // nothing armed (right after a rollout): no move this time
	}
	armed := op.Annotations[restore.AnnotationRestoredFrom]
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: to, Replicas: 1}}
	})
	h.setBindingStatus(to, armed)
	h.eventually("the move to "+to+" ended", 30*time.Second, func() (bool, string) {
		h.agent(true)
		for _, m := range h.migrations() {
			if !m.IsFinished() {
				return false, m.Name + " " + string(m.Status.Phase)
			}
		}
		return true, ""
	})
	return to
}

// settle lets retention run on the last round.
func (h *harness) settle() {
	h.t.Helper()
	time.Sleep(8 * time.Second)
	h.agent(true)
	time.Sleep(8 * time.Second)
}

// soakCounts counts the Checkpoints and the registry's manifests, the
// references to images that are gone and the images nothing references.
func (h *harness) soakCounts() (checkpoints, manifests, dangling, orphans int) {
	h.t.Helper()
	var l v1alpha1.CheckpointList
	if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	named := map[string]bool{}
	for _, cp := range l.Items {
		for _, cc := range cp.Status.Containers {
			named[cc.Image] = true
			if !h.manifestExists(cc.Image) && cp.DeletionTimestamp == nil {
				dangling++
			}
		}
	}
	if op := h.overridePolicy(); op != nil {
		for _, pt := range op.Spec.OverrideRules[0].Overriders.Plaintext {
			if raw := strings.Trim(string(pt.Value.Raw), `"`); strings.Contains(raw, "@sha256:") && !strings.Contains(raw, "{") && !h.manifestExists(raw) {
				dangling++
			}
		}
	}
	repo, err := name.NewRepository(h.reg.Host + "/ckpt/db")
	if err != nil {
		h.t.Fatal(err)
	}
	tags, err := remote.List(repo, remote.WithAuth(h.auth))
	if err != nil {
		h.t.Fatal(err)
	}
	for _, tag := range tags {
		desc, err := remote.Head(repo.Tag(tag), remote.WithAuth(h.auth))
		if err != nil {
			continue // the tag's manifest was deleted
		}
		manifests++
		if !named[repo.Name()+"@"+desc.Digest.String()] {
			orphans++
		}
	}
	return len(l.Items), manifests, dangling, orphans
}

func (h *harness) manifestExists(image string) bool {
	ref, err := name.NewDigest(image)
	if err != nil {
		return false
	}
	_, err = remote.Head(ref, remote.WithAuth(h.auth))
	return err == nil
}
