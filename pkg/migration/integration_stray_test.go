package migration_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
)

// Stray images (issue 11 defect 6): what failed checkpoint attempts pushed
// is recorded by the agent in status.strayImages and deleted by retention,
// after the same origin check as a Checkpoint's results.

// imageExists says whether the registry still holds image's manifest.
func (h *harness) imageExists(image string) bool {
	h.t.Helper()
	ref, err := name.NewDigest(image)
	must(h.t, err)
	_, err = remote.Head(ref, remote.WithAuth(h.auth), remote.WithContext(h.ctx))
	if err != nil && !strings.Contains(err.Error(), "404") {
		h.t.Fatalf("HEAD %s: %v", image, err)
	}
	return err == nil
}

// failWithStrays plays the agent: the next unfinished Checkpoint fails
// after its attempts pushed the given images.
func (h *harness) failWithStrays(images ...string) *v1alpha1.Checkpoint {
	h.t.Helper()
	cp := h.nextUnfinished()
	now := metav1.Now()
	cp.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointFailed, NodeName: "node-1", Attempts: 3, StartTime: &now, CompletionTime: &now,
		Message: "gave up after 3 attempts: pushed image failed verification"}
	for i, img := range images {
		cp.Status.StrayImages = append(cp.Status.StrayImages, v1alpha1.StrayImage{Container: "app", Image: img, Attempt: int32(i + 1), Reason: "VerifyFailed"})
	}
	must(h.t, h.c.Status().Update(h.ctx, cp))
	return cp
}

func (h *harness) checkpointGone(name string) (bool, string) {
	err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, &v1alpha1.Checkpoint{})
	return apierrors.IsNotFound(err), fmt.Sprint(err)
}

// TestRetentionDeletesStrayImagesOfFailedAttempts: a Failed Checkpoint
// (kept: no newer one succeeded) whose attempts pushed two images, one its
// own and one whose manifest names another namespace (a forged status).
// Its own goes from the registry as soon as it is final, while the
// Checkpoint stays; the other stays with an ImageNotDeleted Event. A
// stray naming another Checkpoint's result is never deleted either.
func TestRetentionDeletesStrayImagesOfFailedAttempts(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	own, foreign := h.push("ckpt/db", h.ns, "db-0"), h.push("ckpt/db", "victim", "db-0")
	failed := h.failWithStrays(own, foreign)
	h.eventually("the failed attempt's own image deleted", 20*time.Second, func() (bool, string) {
		return !h.imageExists(own), "still in the registry"
	})
	if gone, _ := h.checkpointGone(failed.Name); gone {
		t.Fatalf("checkpoint %s was deleted: its strays should go while it stays (nothing newer succeeded)", failed.Name)
	}
	h.eventSaying("ImageNotDeleted", "stray image", "checkpoint "+failed.Name, `namespace "victim"`)
	if !h.imageExists(foreign) {
		t.Fatalf("another namespace's image %s was deleted through a stray image", foreign)
	}

	// A person's Checkpoint that succeeded, and one whose status names that
	// result as a stray: the result stays.
	result := h.push("ckpt/db", h.ns, "db-0")
	ok := repoCheckpoint(h.ns, "restorable", h.reg.Host+"/ckpt/db")
	h.create(ok)
	ok.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointSucceeded, Containers: []v1alpha1.ContainerCheckpoint{{Name: "app", Image: result}}}
	must(t, h.c.Status().Update(h.ctx, ok))
	forged := repoCheckpoint(h.ns, "forged", h.reg.Host+"/ckpt/db")
	forged.Finalizers = []string{migration.FinalizerImages}
	h.create(forged)
	forged.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointFailed,
		StrayImages: []v1alpha1.StrayImage{{Container: "app", Image: result, Attempt: 1, Reason: "VerifyFailed"}}}
	must(t, h.c.Status().Update(h.ctx, forged))
	must(t, h.c.Delete(h.ctx, forged))
	h.eventually("the forged checkpoint gone", 20*time.Second, func() (bool, string) { return h.checkpointGone("forged") })
	h.eventSaying("ImageNotDeleted", "it is the result of checkpoint restorable")
	if !h.imageExists(result) {
		t.Fatalf("the result of checkpoint restorable was deleted through another Checkpoint's stray image")
	}
}

// refusingRegistry is a proxy in front of the test registry that answers
// every DELETE with 405 while refusing is on (a registry without
// storage.delete.enabled, or a pusher-only credential).
type refusingRegistry struct {
	Host     string
	refusing atomic.Bool
}

func startRefusingRegistry(t *testing.T, upstream string) *refusingRegistry {
	t.Helper()
	r := &refusingRegistry{}
	r.refusing.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	r.Host = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodDelete && r.refusing.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`))
			return
		}
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// TestRetentionKeepsCheckpointWhoseStrayImageCannotBeDeleted: a Failed
// Checkpoint pruned (deleted) with a stray image the registry refuses to
// delete stays, its finalizer waiting, with an ImageDeleteFailed Event;
// once the registry accepts, the image and then the Checkpoint go.
func TestRetentionKeepsCheckpointWhoseStrayImageCannotBeDeleted(t *testing.T) {
	h := start(t)
	refusing := startRefusingRegistry(t, h.reg.Host)
	// Pushed to the registry, named through the proxy: the same manifest.
	stray := strings.Replace(h.push("ckpt/db", h.ns, "db-0"), h.reg.Host, refusing.Host, 1)
	cp := repoCheckpoint(h.ns, "failed", refusing.Host+"/ckpt/db")
	cp.Finalizers = []string{migration.FinalizerImages}
	h.create(cp)
	cp.Status = v1alpha1.CheckpointStatus{Phase: v1alpha1.CheckpointFailed,
		StrayImages: []v1alpha1.StrayImage{{Container: "app", Image: stray, Attempt: 1, Reason: "VerifyFailed"}}}
	must(t, h.c.Status().Update(h.ctx, cp))
	must(t, h.c.Delete(h.ctx, cp))
	h.event("Checkpoint", "failed", "ImageDeleteFailed")
	time.Sleep(2 * time.Second)
	if gone, err := h.checkpointGone("failed"); gone {
		t.Fatalf("the Checkpoint went although its stray image was not deleted: %s", err)
	}
	if !h.imageExists(strings.Replace(stray, refusing.Host, h.reg.Host, 1)) {
		t.Fatalf("the registry refused the delete, yet the image is gone")
	}
	refusing.refusing.Store(false)
	h.eventually("the Checkpoint gone once the registry deletes", 60*time.Second, func() (bool, string) { return h.checkpointGone("failed") })
	if h.imageExists(strings.Replace(stray, refusing.Host, h.reg.Host, 1)) {
		t.Fatalf("the Checkpoint went but its stray image %s is still in the registry", stray)
	}
}
