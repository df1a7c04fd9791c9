package agent_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent/archive"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// verifyBreaker is a proxy in front of a real registry that lets pushes
// through but breaks the agent's read-back by digest (GET of a manifest
// by sha256): refusing it (404), or holding it until the client gives up;
// or ("lose-put") stores a pushed manifest and holds the answer until the
// client gives up.
type verifyBreaker struct {
	Host string

	mu   sync.Mutex
	mode string // "", "refuse" or "hold"
}

func startVerifyBreaker(t *testing.T, upstream string) *verifyBreaker {
	t.Helper()
	b := &verifyBreaker{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	b.Host = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			switch b.Mode() {
			case "refuse":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"refused by the test"}]}`))
				return
			case "hold":
				<-r.Context().Done()
				return
			}
		}
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && b.Mode() == "lose-put" {
			proxy.ServeHTTP(httptest.NewRecorder(), r)
			<-r.Context().Done()
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// taggedDigest is the digest the real registry's tag of cp's container
// names, "" while there is none.
func taggedDigest(t *testing.T, f *fixture, cp *v1alpha1.Checkpoint, pod, container string) string {
	t.Helper()
	got := getCheckpoint(t, f, cp.Name)
	repo := strings.Replace(cp.Spec.Repository, cp.Spec.Repository[:strings.IndexByte(cp.Spec.Repository, '/')], f.reg.Host, 1)
	ref, err := name.NewTag(repo+":"+pod+"-"+container+"-"+string(got.UID)[:8], name.Insecure)
	must(t, err)
	desc, err := remote.Head(ref, remote.WithContext(t.Context()))
	if err != nil {
		return ""
	}
	return desc.Digest.String()
}

func (b *verifyBreaker) Mode() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mode
}

func (b *verifyBreaker) SetMode(m string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mode = m
}

// inRegistry says whether the real registry holds image (named through
// the proxy) by digest.
func inRegistry(t *testing.T, f *fixture, b *verifyBreaker, image string) bool {
	t.Helper()
	ref, err := name.NewDigest(strings.Replace(image, b.Host, f.reg.Host, 1), name.Insecure)
	must(t, err)
	_, err = remote.Head(ref, remote.WithContext(t.Context()))
	return err == nil
}

// TestAgentRecordsStrayImages: images that attempts pushed and that did
// not become the Checkpoint's result are named in status.strayImages, so
// that retention can delete them: after failed verifications, and after
// an agent stopped between the push and the status write (from its
// journal, on the next attempt).
func TestAgentRecordsStrayImages(t *testing.T) {
	f := setup(t)
	breaker := startVerifyBreaker(t, f.reg.Host)
	journalDir := filepath.Join(t.TempDir(), "journal")
	agent := func() func() {
		return startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir(),
			func(o *options.Options) {
				o.InsecureRegistries = append(o.InsecureRegistries, breaker.Host)
				o.JournalDir = journalDir
			})
	}
	journal := &archive.Journal{Dir: journalDir}

	t.Run("failed verification records the pushed digest", func(t *testing.T) {
		defer agent()()
		breaker.SetMode("refuse")
		defer breaker.SetMode("")
		pod := runPod(t, f, "sim-node", "verify-fails", "")
		cp := newCheckpoint("verify-fails", pod.Name, v1alpha1.BuilderNative, breaker.Host)
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, "VerifyFailed", "failed verification")
		if len(got.Status.Containers) != 0 || len(got.Status.StrayImages) != int(got.Status.Attempts) {
			t.Fatalf("%d attempts: results %+v, stray images %+v; want one stray image per attempt", got.Status.Attempts, got.Status.Containers, got.Status.StrayImages)
		}
		for i, s := range got.Status.StrayImages {
			if s.Container != "db" || s.Reason != "VerifyFailed" || s.Attempt != int32(i+1) || !strings.HasPrefix(s.Image, cp.Spec.Repository+"@sha256:") {
				t.Errorf("stray image %d = %+v", i, s)
			}
			if !inRegistry(t, f, breaker, s.Image) {
				t.Errorf("stray image %s is not the pushed manifest: the registry does not hold it", s.Image)
			}
		}
		// The entry goes right after the final status write.
		eventually(t, 10*time.Second, func() error {
			if e, ok := journal.Lookup(string(got.UID)); ok {
				return fmt.Errorf("the journal still holds %+v after the images were reported", e)
			}
			return nil
		})
	})

	t.Run("an agent stopped after the push reports the image from its journal", func(t *testing.T) {
		stop := agent()
		breaker.SetMode("hold")
		defer breaker.SetMode("")
		pod := runPod(t, f, "sim-node", "stopped-after-push", "")
		cp := newCheckpoint("stopped-after-push", pod.Name, v1alpha1.BuilderNative, breaker.Host)
		create(t, f, cp)
		var pushed archive.PushedImage
		eventually(t, 60*time.Second, func() error {
			uid := getCheckpoint(t, f, cp.Name).UID
			e, ok := journal.Lookup(string(uid))
			if !ok || len(e.Images) == 0 {
				return fmt.Errorf("no pushed image in the journal yet")
			}
			pushed = e.Images[0]
			return nil
		})
		stop() // while reading the image back: the status never names it
		mid := getCheckpoint(t, f, cp.Name)
		if mid.Status.Phase != v1alpha1.CheckpointPushing || len(mid.Status.StrayImages) != 0 || len(mid.Status.Containers) != 0 {
			t.Fatalf("after the stop: phase %s, results %+v, strays %+v; want Pushing with no image recorded", mid.Status.Phase, mid.Status.Containers, mid.Status.StrayImages)
		}
		breaker.SetMode("")
		defer agent()()
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
		want := v1alpha1.StrayImage{Container: "db", Image: pushed.Image, Attempt: 1, Reason: "Interrupted"}
		if got.Status.Attempts != 2 || len(got.Status.StrayImages) != 1 || got.Status.StrayImages[0] != want {
			t.Fatalf("attempts %d, stray images %+v; want 2 attempts and %+v", got.Status.Attempts, got.Status.StrayImages, want)
		}
		if len(got.Status.Containers) != 1 || got.Status.Containers[0].Image == pushed.Image {
			t.Errorf("results %+v: the second attempt's image should be the result", got.Status.Containers)
		}
		if !inRegistry(t, f, breaker, pushed.Image) {
			t.Errorf("the journaled image %s is not in the registry", pushed.Image)
		}
		eventually(t, 10*time.Second, func() error {
			if e, ok := journal.Lookup(string(got.UID)); ok {
				return fmt.Errorf("the journal still holds %+v", e)
			}
			return nil
		})
	})

	t.Run("a push whose answer is lost records the stored manifest", func(t *testing.T) {
		stop := startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir(),
			func(o *options.Options) {
				o.InsecureRegistries = append(o.InsecureRegistries, breaker.Host)
				o.JournalDir = journalDir
				o.PushTimeout = 3 * time.Second
			})
		defer stop()
		breaker.SetMode("lose-put")
		defer breaker.SetMode("")
		pod := runPod(t, f, "sim-node", "answer-lost", "")
		cp := newCheckpoint("answer-lost", pod.Name, v1alpha1.BuilderNative, breaker.Host)
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, "PushTimeout", "did not finish within 3s")
		if len(got.Status.StrayImages) != int(got.Status.Attempts) {
			t.Fatalf("%d attempts, stray images %+v: want one per attempt", got.Status.Attempts, got.Status.StrayImages)
		}
		for i, s := range got.Status.StrayImages {
			if s.Reason != "PushTimeout" || s.Attempt != int32(i+1) || !inRegistry(t, f, breaker, s.Image) {
				t.Errorf("stray image %d = %+v (in the registry: %v)", i, s, inRegistry(t, f, breaker, s.Image))
			}
		}
		if last := got.Status.StrayImages[len(got.Status.StrayImages)-1].Image; !strings.HasSuffix(last, "@"+taggedDigest(t, f, cp, pod.Name, "db")) {
			t.Errorf("the last stray image %s is not the manifest the tag names", last)
		}
	})

	t.Run("an agent stopped before the push answered finds the manifest by its tag", func(t *testing.T) {
		stop := agent()
		breaker.SetMode("lose-put")
		defer breaker.SetMode("")
		pod := runPod(t, f, "sim-node", "stopped-mid-answer", "")
		cp := newCheckpoint("stopped-mid-answer", pod.Name, v1alpha1.BuilderNative, breaker.Host)
		create(t, f, cp)
		var stored string
		eventually(t, 60*time.Second, func() error {
			if stored = taggedDigest(t, f, cp, pod.Name, "db"); stored == "" {
				return fmt.Errorf("no manifest stored yet")
			}
			return nil
		})
		stop() // before the push returned its digest: no record names it
		if e, ok := journal.Lookup(string(getCheckpoint(t, f, cp.Name).UID)); ok && len(e.Images) > 0 {
			t.Fatalf("the journal names %+v: the stop came too late to test the tag", e.Images)
		}
		breaker.SetMode("")
		defer agent()()
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
		want := v1alpha1.StrayImage{Container: "db", Image: cp.Spec.Repository + "@" + stored, Reason: "Interrupted"}
		if len(got.Status.StrayImages) != 1 || got.Status.StrayImages[0] != want {
			t.Fatalf("stray images %+v, want [%+v]", got.Status.StrayImages, want)
		}
	})
}
