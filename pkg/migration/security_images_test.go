package migration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/pkg/restore"
)

// checkpointImage is a checkpoint image as the agent pushes it: OCI, one
// layer, the manifest recording container, pod and namespace.
func checkpointImage(ns, pod, container string) (v1.Image, error) {
	layer, err := random.Layer(256, ggcrtypes.OCILayer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, ggcrtypes.OCIManifestSchema1), ggcrtypes.OCIConfigJSON)
	src := checkpointimage.Source{Container: container, Pod: pod, Namespace: ns}
	return mutate.Annotations(img, checkpointimage.Annotations(src)).(v1.Image), nil
}

// push writes a checkpoint image of ns/pod into repo (under the test
// registry) and returns it by digest.
func (h *harness) push(repo, ns, pod string) string {
	h.t.Helper()
	img, err := checkpointImage(ns, pod, "app")
	must(h.t, err)
	tag, err := name.NewTag(h.reg.Host + "/" + repo + ":t" + fmt.Sprint(time.Now().UnixNano()))
	must(h.t, err)
	must(h.t, remote.Write(tag, img, remote.WithAuth(h.auth)))
	d, err := img.Digest()
	must(h.t, err)
	return h.reg.Host + "/" + repo + "@" + d.String()
}

// nextUnfinished waits for a Checkpoint of the namespace that has not
// finished: the one the controller created, for the test to play its agent.
func (h *harness) nextUnfinished() *v1alpha1.Checkpoint {
	h.t.Helper()
	var cp *v1alpha1.Checkpoint
	h.eventually("a new checkpoint", 20*time.Second, func() (bool, string) {
		var l v1alpha1.CheckpointList
		must(h.t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
		for i := range l.Items {
			if !l.Items[i].IsFinished() {
				cp = &l.Items[i]
				return true, ""
			}
		}
		return false, ""
	})
	return cp
}

// finishWith plays a compromised node: the next unfinished Checkpoint
// succeeds naming image.
func (h *harness) finishWith(image string) string {
	h.t.Helper()
	cp := h.nextUnfinished()
	now := metav1.Now()
	cp.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointSucceeded, StartTime: &now, CompletionTime: &now,
		Containers: []v1alpha1.ContainerCheckpoint{{Name: "app", Image: image, ArchiveBytes: 1}}}
	must(h.t, h.c.Status().Update(h.ctx, cp))
	return cp.Name
}

// eventSaying waits for an Event with reason whose message holds every want.
func (h *harness) eventSaying(reason string, want ...string) {
	h.t.Helper()
	h.eventually("Event "+reason, 20*time.Second, func() (bool, string) {
		var l corev1.EventList
		must(h.t, h.c.List(h.ctx, &l, client.InNamespace(h.ns)))
		for _, e := range l.Items {
			ok := e.Reason == reason
			for _, w := range want {
				ok = ok && strings.Contains(e.Message, w)
			}
			if ok {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(l.Items), " events")
	})
}

// TestSecurityRestorePlanRefusesForeignImages: a Checkpoint whose status
// (written by a compromised node) names another namespace's checkpoint, or
// an image outside the policy's repository, is never armed into the
// restore plan; an UntrustedCheckpoint Event names it. The workload's own
// next checkpoint is armed again.
func TestSecurityRestorePlanRefusesForeignImages(t *testing.T) {
	h := start(t)
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Retention.Keep = 5 })
	var own []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		own = h.agent(true)
		return len(own) == 1, ""
	})
	h.eventually("armed with the own checkpoint", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && op.Annotations[restore.AnnotationRestoredFrom] == own[0], ""
	})
	for _, attack := range []struct{ what, image, want string }{
		{"another namespace's checkpoint in the policy's repository", h.push("ckpt/db", "victim", "db-0"), `namespace "victim"`},
		{"an image outside the policy's repository", h.push("victim/db", h.ns, "db-0"), "is not an image of repository " + h.reg.Host + "/ckpt/db"},
	} {
		bad := h.finishWith(attack.image)
		h.eventSaying("UntrustedCheckpoint", "checkpoint "+bad, "not restored", attack.want)
		if op := h.overridePolicy(); op != nil && (op.Annotations[restore.AnnotationRestoredFrom] == bad || strings.Contains(fmt.Sprint(op.Spec), attack.image)) {
			t.Fatalf("%s: armed: %+v", attack.what, op.Spec)
		}
	}
	h.eventually("the next own checkpoint armed", 30*time.Second, func() (bool, string) {
		done := h.agent(true)
		op := h.overridePolicy()
		return len(done) == 0 && op != nil && op.Annotations[restore.AnnotationRestoredFrom] != own[0] &&
			strings.Contains(op.Annotations[restore.AnnotationRestoredFrom], "db-0"), fmt.Sprint(done)
	})
}

// TestSecurityRetentionDeletesOnlyOwnImages: deleting a Checkpoint (as
// retention does) deletes its images only when they are its own; one whose
// status names another namespace's image goes, the image stays, and an
// ImageNotDeleted Event says why.
func TestSecurityRetentionDeletesOnlyOwnImages(t *testing.T) {
	h := start(t)
	victim := h.push("ckpt/db", "victim", "db-0")
	mine := h.push("ckpt/db", h.ns, "db-0")
	for name, image := range map[string]string{"foreign": victim, "own": mine} {
		cp := repoCheckpoint(h.ns, name, h.reg.Host+"/ckpt/db")
		cp.Finalizers = []string{migration.FinalizerImages}
		h.create(cp)
		cp.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointSucceeded, Containers: []v1alpha1.ContainerCheckpoint{{Name: "app", Image: image}}}
		must(t, h.c.Status().Update(h.ctx, cp))
		must(t, h.c.Delete(h.ctx, cp))
		h.eventually("checkpoint "+name+" gone", 20*time.Second, func() (bool, string) {
			err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, &v1alpha1.Checkpoint{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	}
	h.eventSaying("ImageNotDeleted", "checkpoint foreign", `namespace "victim"`)
	ref, _ := name.NewDigest(victim)
	if _, err := remote.Head(ref, remote.WithAuth(h.auth)); err != nil {
		t.Fatalf("another namespace's image was deleted: %v", err)
	}
	ref, _ = name.NewDigest(mine)
	if _, err := remote.Head(ref, remote.WithAuth(h.auth)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("the own image was not deleted: %v", err)
	}
}

// TestSecurityReflectedRestoredFromIsValidated: restoredFrom comes from a
// member's annotation; a value that cannot be a Checkpoint's name is never
// used.
func TestSecurityReflectedRestoredFromIsValidated(t *testing.T) {
	for value, want := range map[string]string{
		"db-0-ckpt-1": "db-0-ckpt-1", "../../etc": "", "UPPER": "", strings.Repeat("a", 64): "", "": "", "a b": "",
	} {
		if got := migration.Destination(reflected(value), "m1").RestoredFrom; got != want {
			t.Errorf("restoredFrom %q: got %q, want %q", value, got, want)
		}
	}
}

func reflected(restoredFrom string) *workv1alpha2.ResourceBinding {
	raw, _ := json.Marshal(map[string]interface{}{restore.StatusField: map[string]string{"restoredFrom": restoredFrom}})
	return &workv1alpha2.ResourceBinding{Status: workv1alpha2.ResourceBindingStatus{AggregatedStatus: []workv1alpha2.AggregatedStatusItem{
		{ClusterName: "m1", Applied: true, Health: workv1alpha2.ResourceHealthy, Status: &runtime.RawExtension{Raw: raw}},
	}}}
}

// FuzzDestination: whatever a member reflects, Destination never panics
// and names no restoredFrom that cannot be a Checkpoint's name.
func FuzzDestination(f *testing.F) {
	f.Add(`{"stateshift":{"restoredFrom":"db-0-ckpt-1"}}`)
	f.Add(`{"stateshift":{"restoredFrom":"../x"}}`)
	f.Add(`{"stateshift":{"restoredFrom":1}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, raw string) {
		rb := &workv1alpha2.ResourceBinding{Status: workv1alpha2.ResourceBindingStatus{AggregatedStatus: []workv1alpha2.AggregatedStatusItem{
			{ClusterName: "m1", Status: &runtime.RawExtension{Raw: []byte(raw)}},
		}}}
		got := migration.Destination(rb, "m1").RestoredFrom
		if got != "" && migration.ValidCheckpointName(got) != got {
			t.Fatalf("restoredFrom %q is not a valid Checkpoint name", got)
		}
	})
}
