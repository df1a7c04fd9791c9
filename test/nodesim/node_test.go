package nodesim

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// TestNodeSim runs every behaviour against one real API server and registry;
// the subtests build on each other (the restore uses a real checkpoint).
func TestNodeSim(t *testing.T) {
	h := newHarness(t)

	t.Run("RegistersReady", func(t *testing.T) {
		for _, n := range []*Node{h.node, h.cannot} {
			node, err := h.cs.CoreV1().Nodes().Get(t.Context(), n.Name(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ready := false
			for _, c := range node.Status.Conditions {
				ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
			}
			if !ready {
				t.Errorf("node %s not Ready: %+v", n.Name(), node.Status.Conditions)
			}
			if node.Status.NodeInfo.KubeletVersion != "v1.35.3" || node.Status.NodeInfo.ContainerRuntimeVersion != "cri-o://1.35.0-nodesim" {
				t.Errorf("nodeInfo = %+v", node.Status.NodeInfo)
			}
			if int(node.Status.DaemonEndpoints.KubeletEndpoint.Port) != n.cfg.Port {
				t.Errorf("kubelet port %d, want %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port, n.cfg.Port)
			}
			if len(node.Status.Addresses) == 0 || node.Status.Addresses[0].Type != corev1.NodeInternalIP || node.Status.Addresses[0].Address != n.cfg.IP {
				t.Errorf("addresses = %+v", node.Status.Addresses)
			}
			if node.Status.Allocatable.Pods().Value() != 110 || node.Status.Allocatable.Cpu().IsZero() || node.Status.Allocatable.Memory().IsZero() {
				t.Errorf("allocatable = %+v", node.Status.Allocatable)
			}
		}
		// The heartbeat keeps the Lease fresh.
		eventually(t, 10*time.Second, "lease renewed", func() (bool, string) {
			l, err := h.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(t.Context(), h.node.Name(), metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) < 3*time.Second && *l.Spec.HolderIdentity == h.node.Name(), ""
		})
	})

	var source *corev1.Pod
	t.Run("PodRuns", func(t *testing.T) {
		h.createPod(t, h.node, "source", "docker.io/library/busybox:1.36", withVolume("data", "/data"))
		source = h.waitRunning(t, "source")
		cs := source.Status.ContainerStatuses
		if source.Status.PodIP != "127.0.0.2" || source.Status.HostIP != "127.0.0.2" || source.Status.StartTime == nil {
			t.Errorf("pod status = %+v", source.Status)
		}
		if len(cs) != 1 || !regexp.MustCompile(`^cri-o://[0-9a-f]{64}$`).MatchString(cs[0].ContainerID) || !cs[0].Ready ||
			cs[0].Started == nil || !*cs[0].Started || cs[0].ImageID == "" || cs[0].RestartCount != 0 || cs[0].State.Running == nil {
			t.Errorf("container statuses = %+v", cs)
		}
		first, ok := h.node.State(h.ns, "source", "app")
		if !ok || !first.Running || first.RestoredFrom != "" || first.MemoryBytes != 256<<10 {
			t.Fatalf("state = %+v, %v", first, ok)
		}
		checkNoRestoreTimings(t, first)
		eventually(t, 5*time.Second, "counter grows", func() (bool, string) {
			s, _ := h.node.State(h.ns, "source", "app")
			return s.Counter > first.Counter+3 && s.MemorySHA256 != first.MemorySHA256, ""
		})
		// The same state over HTTP, as other processes read it.
		list, err := FetchState(t.Context(), h.node.Endpoint(), h.node.CAPEM(), h.ns, "source", "")
		if err != nil || len(list) != 1 || list[0].Container != "app" || list[0].Pod != "source" || list[0].Counter == 0 {
			t.Errorf("FetchState = %+v, %v", list, err)
		}
		if _, ok := h.cannot.State(h.ns, "source", "app"); ok {
			t.Error("the other node runs a pod not bound to it")
		}
	})
	if source == nil {
		t.Fatal("no source pod")
	}

	var archive string
	var archived SavedState
	t.Run("Checkpoint", func(t *testing.T) {
		before, _ := h.node.State(h.ns, "source", "app")
		code, body, hdr := kubeletCall(t, h.node, http.MethodPost, h.allowed, "/checkpoint/"+h.ns+"/source/app?timeout=30")
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("checkpoint: %d %s (%v)", code, body, hdr)
		}
		var resp struct{ Items []string }
		if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Items) != 1 {
			t.Fatalf("body %s: %v", body, err)
		}
		archive = resp.Items[0]
		wantName := regexp.MustCompile(`^checkpoint-source_` + h.ns + `-app-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\.tar$`)
		if filepath.Dir(archive) != h.node.CheckpointDir() || !filepath.IsAbs(archive) || !wantName.MatchString(filepath.Base(archive)) {
			t.Errorf("archive path %s", archive)
		}
		fi, err := os.Stat(archive)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("archive %s: %v %v", archive, fi.Mode(), err)
		}
		di, err := os.Stat(h.node.CheckpointDir())
		if err != nil || di.Mode().Perm() != 0o700 {
			t.Errorf("checkpoint dir mode %v %v", di.Mode(), err)
		}
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dir, names := extractArchive(t, f)
		archived = checkArchiveLayout(t, dir, names, h.ns, "source", "app", "docker.io/library/busybox:1.36")
		if archived.Counter < before.Counter || archived.Seed != before.Seed || archived.MemoryBytes != 256<<10 || archived.PodUID != string(source.UID) {
			t.Errorf("archived %+v, state before %+v", archived, before)
		}
		var binds []struct{ Destination string }
		if b, err := os.ReadFile(filepath.Join(dir, BindMountsFile)); err != nil || json.Unmarshal(b, &binds) != nil || len(binds) != 1 || binds[0].Destination != "/data" {
			t.Errorf("bind.mounts: %s %v", b, err)
		}
		// CRI-O leaves the container running.
		eventually(t, 5*time.Second, "container runs on after the dump", func() (bool, string) {
			s, _ := h.node.State(h.ns, "source", "app")
			return s.Running && s.Counter > archived.Counter, ""
		})
	})
	if archive == "" {
		t.Fatal("no archive")
	}

	t.Run("CheckpointErrors", func(t *testing.T) {
		path := "/checkpoint/" + h.ns + "/source/app"
		for _, tc := range []struct {
			name, method, token, path string
			code                      int
			body                      string
		}{
			{"no token", http.MethodPost, "", path, 401, "Unauthorized"},
			{"invalid token", http.MethodPost, "not-a-token", path, 401, "Unauthorized"},
			{"not allowed", http.MethodPost, h.denied, path, 403, "Forbidden (user=" + h.deniedSA + ", verb=create, resource=nodes, subresource(s)=[checkpoint])\n"},
			{"not allowed to get", http.MethodGet, h.allowed, path, 403, "Forbidden (user=system:serviceaccount:" + h.ns + ":checkpointer, verb=get, resource=nodes, subresource(s)=[checkpoint])\n"},
			{"unknown pod", http.MethodPost, h.allowed, "/checkpoint/" + h.ns + "/nope/app", 404, "pod does not exist"},
			{"pod of another node", http.MethodPost, h.allowed, "/checkpoint/" + h.ns + "/source/app", 0, ""},
			{"unknown container", http.MethodPost, h.allowed, "/checkpoint/" + h.ns + "/source/nope", 404, "container nope does not exist"},
			{"bad timeout", http.MethodPost, h.allowed, path + "?timeout=soon", 404, "cannot parse value of timeout parameter"},
			{"negative timeout", http.MethodPost, h.allowed, path + "?timeout=-1", 500, "checkpointing of " + h.ns + "/source/app failed (CheckpointContainer requires the timeout value to be > 0)"},
			{"unknown path", http.MethodPost, h.allowed, "/checkpoint/" + h.ns + "/source", 404, "404: Page Not Found"},
		} {
			n := h.node
			if tc.name == "pod of another node" {
				code, body, _ := kubeletCall(t, h.cannot, tc.method, h.allowed, tc.path)
				if code != 404 || body != "pod does not exist" {
					t.Errorf("%s: %d %q", tc.name, code, body)
				}
				continue
			}
			code, body, _ := kubeletCall(t, n, tc.method, tc.token, tc.path)
			if code != tc.code || body != tc.body {
				t.Errorf("%s: got %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
			}
		}
		// A role that also grants get lets the request reach the router: 405.
		h.grantGet(t)
		code, body, hdr := kubeletCall(t, h.node, http.MethodGet, h.allowed, path)
		if code != http.StatusMethodNotAllowed || body != "405: Method Not Allowed" || hdr.Get("Allow") != "POST" {
			t.Errorf("GET checkpoint: %d %q %v", code, body, hdr)
		}
	})

	t.Run("CheckpointRuntimeFailure", func(t *testing.T) {
		entries := func() int { e, _ := os.ReadDir(h.node.CheckpointDir()); return len(e) }
		n0 := entries()
		h.node.InjectCheckpointError(errors.New("criu failed: type NOTIFY errno 0"))
		code, body, _ := kubeletCall(t, h.node, http.MethodPost, h.allowed, "/checkpoint/"+h.ns+"/source/app")
		h.node.InjectCheckpointError(nil)
		if code != 500 || !strings.HasPrefix(body, "checkpointing of "+h.ns+"/source/app failed (rpc error: code = Unknown desc = failed to checkpoint container ") ||
			!strings.HasSuffix(body, "criu failed: type NOTIFY errno 0)") {
			t.Errorf("injected failure: %d %q", code, body)
		}
		// Timeouts: the CRI default (1s here) is the floor; a longer
		// ?timeout is honoured.
		h.node.InjectCheckpointDelay(2 * time.Second)
		defer h.node.InjectCheckpointDelay(0)
		start := time.Now()
		code, body, _ = kubeletCall(t, h.node, http.MethodPost, h.allowed, "/checkpoint/"+h.ns+"/source/app?timeout=1")
		if code != 500 || body != "checkpointing of "+h.ns+"/source/app failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)" {
			t.Errorf("timeout: %d %q", code, body)
		}
		if d := time.Since(start); d < time.Second || d > 2*time.Second {
			t.Errorf("timed out after %s, want about 1s", d)
		}
		code, body, _ = kubeletCall(t, h.node, http.MethodPost, h.allowed, "/checkpoint/"+h.ns+"/source/app?timeout=10")
		if code != 200 {
			t.Errorf("with a longer timeout: %d %q", code, body)
		}
		if got := entries(); got != n0+1 {
			t.Errorf("%d archives after one success and two failures, started with %d", got, n0)
		}
	})

	src := checkpointimage.Source{Container: "app", Pod: "source", Namespace: h.ns, RootfsImage: "docker.io/library/busybox:1.36"}
	ckptImage := h.pushImage(t, "ckpt/source-app", archive, src, true)
	plainImage := h.pushImage(t, "plain/source-app", archive, src, false)

	t.Run("Restore", func(t *testing.T) {
		h.createPod(t, h.node, "restored", ckptImage, withVolume("data", "/data"))
		pod := h.waitRunning(t, "restored")
		s, ok := h.node.State(h.ns, "restored", "app")
		if !ok || s.RestoredFrom != ckptImage || s.RestoredCounter != archived.Counter || s.RestoredMemorySHA256 != archived.MemorySHA256 ||
			s.Seed != archived.Seed || s.MemoryBytes != archived.MemoryBytes || s.Counter < archived.Counter {
			t.Fatalf("restored state %+v, archive %+v", s, archived)
		}
		if !strings.HasPrefix(pod.Status.ContainerStatuses[0].ImageID, ckptImage[:strings.Index(ckptImage, "@")]+"@sha256:") {
			t.Errorf("imageID %s", pod.Status.ContainerStatuses[0].ImageID)
		}
		// It goes on from there, with the memory the source would have had.
		eventually(t, 5*time.Second, "restored counter grows", func() (bool, string) {
			s, _ := h.node.State(h.ns, "restored", "app")
			return s.Counter > archived.Counter+2 && s.MemorySHA256 == MemorySHA256(archived.Seed, s.Counter, archived.MemoryBytes), ""
		})
		list, err := FetchState(t.Context(), h.node.Endpoint(), h.node.CAPEM(), h.ns, "restored", "app")
		if err != nil || len(list) != 1 || list[0].RestoredFrom != ckptImage || list[0].RestoredCounter != archived.Counter {
			t.Errorf("FetchState = %+v, %v", list, err)
		}
		// The restore reports its pull from the registry and the rest of it,
		// which end before the container starts.
		if s.RestorePullSeconds <= 0 || s.RestoreRuntimeSeconds <= 0 {
			t.Errorf("restore timings: pull %gs, runtime %gs", s.RestorePullSeconds, s.RestoreRuntimeSeconds)
		}
		if len(list) == 1 && (list[0].RestorePullSeconds != s.RestorePullSeconds || list[0].RestoreRuntimeSeconds != s.RestoreRuntimeSeconds) {
			t.Errorf("FetchState restore timings %g/%g, node %g/%g", list[0].RestorePullSeconds, list[0].RestoreRuntimeSeconds, s.RestorePullSeconds, s.RestoreRuntimeSeconds)
		}
		if created := pod.CreationTimestamp.Time; s.Started.Sub(created).Seconds() < s.RestorePullSeconds+s.RestoreRuntimeSeconds-0.001 {
			t.Errorf("pod created %s, container started %s: less than the pull %gs and the restore %gs",
				created, s.Started, s.RestorePullSeconds, s.RestoreRuntimeSeconds)
		}
		// And, as a kubelet, the pull in a Pulled event on the pod.
		fi, err := os.Stat(archive)
		if err != nil {
			t.Fatal(err)
		}
		ev := h.waitEvent(t, "restored", "Pulled")
		m := regexp.MustCompile(`^Successfully pulled image "` + regexp.QuoteMeta(ckptImage) + `" in (\S+) \((\S+) including waiting\)\. Image size: (\d+) bytes\.$`).FindStringSubmatch(ev.Message)
		if m == nil {
			t.Fatalf("Pulled message %q", ev.Message)
		}
		d, err := time.ParseDuration(m[1])
		want := time.Duration(s.RestorePullSeconds * float64(time.Second)).Truncate(time.Millisecond)
		if err != nil || m[2] != m[1] || d < want-time.Millisecond || d > want+time.Millisecond {
			t.Errorf("Pulled message %q, restore pull %gs", ev.Message, s.RestorePullSeconds)
		}
		if size, _ := strconv.ParseInt(m[3], 10, 64); size <= fi.Size() {
			t.Errorf("image size %s, the layer alone has %d bytes", m[3], fi.Size())
		}
		if ev.Type != corev1.EventTypeNormal || ev.Source.Component != "kubelet" || ev.Source.Host != h.node.Name() ||
			ev.InvolvedObject.Kind != "Pod" || ev.InvolvedObject.UID != pod.UID || ev.InvolvedObject.FieldPath != "spec.containers{app}" {
			t.Errorf("Pulled event %+v", ev)
		}
		// An image the runtime does not pull has no such event.
		if evs := h.events(t, "source", "Pulled"); len(evs) != 0 {
			t.Errorf("Pulled events for a cold start without a pull: %+v", evs)
		}
	})

	t.Run("RestoreNeedsBindMounts", func(t *testing.T) {
		h.createPod(t, h.node, "no-volume", ckptImage)
		w := h.waitWaiting(t, "no-volume", "CreateContainerError")
		if !strings.Contains(w.Message, `expects following bind mounts defined (/data)`) {
			t.Errorf("message %q", w.Message)
		}
	})

	t.Run("CannotRestore", func(t *testing.T) {
		h.createPod(t, h.cannot, "cannot", ckptImage, withVolume("data", "/data"))
		w := h.waitWaiting(t, "cannot", "CreateContainerError")
		if w.Message != "no command specified" {
			t.Errorf("message %q", w.Message)
		}
		s, ok := h.cannot.State(h.ns, "cannot", "app")
		if !ok || s.Running || s.Reason != "CreateContainerError" || s.RestoredFrom != "" {
			t.Errorf("state %+v", s)
		}
		// An ordinary image still runs there.
		h.createPod(t, h.cannot, "cannot-plain", "docker.io/library/busybox:1.36")
		h.waitRunning(t, "cannot-plain")
	})

	t.Run("ImageWithoutAnnotationStartsCold", func(t *testing.T) {
		h.createPod(t, h.node, "plain", plainImage, withVolume("data", "/data"))
		pod := h.waitRunning(t, "plain")
		s, _ := h.node.State(h.ns, "plain", "app")
		if s.RestoredFrom != "" || s.Seed == archived.Seed || s.Counter >= archived.Counter {
			t.Errorf("state %+v of a cold start, archive %+v", s, archived)
		}
		// Pulled (its manifest), but not restored.
		checkNoRestoreTimings(t, s)
		if ev := h.waitEvent(t, "plain", "Pulled"); !strings.HasPrefix(ev.Message, `Successfully pulled image "`+plainImage+`" in `) {
			t.Errorf("Pulled message %q", ev.Message)
		}
		if !strings.HasSuffix(pod.Status.ContainerStatuses[0].ImageID, plainImage[strings.Index(plainImage, "@"):]) {
			t.Errorf("imageID %s, image %s", pod.Status.ContainerStatuses[0].ImageID, plainImage)
		}
	})

	t.Run("BrokenCheckpointImage", func(t *testing.T) {
		// Annotated as a checkpoint, but the layer is no checkpoint archive.
		junk := filepath.Join(t.TempDir(), "junk.tar")
		f, err := os.Create(junk)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		_ = tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o600, Size: 5})
		_, _ = tw.Write([]byte("hello"))
		if err := errors.Join(tw.Close(), f.Close()); err != nil {
			t.Fatal(err)
		}
		broken := h.pushImage(t, "ckpt/broken", junk, src, true)
		h.createPod(t, h.node, "broken", broken)
		w := h.waitWaiting(t, "broken", "CreateContainerError")
		if !strings.Contains(w.Message, `failed to read "config.dump"`) {
			t.Errorf("message %q", w.Message)
		}
	})

	t.Run("RegistryDownThenBack", func(t *testing.T) {
		h.reg.Stop()
		h.createPod(t, h.node, "retry", ckptImage, withVolume("data", "/data"), withAnnotation(MemoryBytesAnnotation, "4096"))
		w := h.waitWaiting(t, "retry", "ErrImagePull")
		if !strings.Contains(w.Message, ckptImage) {
			t.Errorf("message %q", w.Message)
		}
		h.reg.Start()
		h.waitRunning(t, "retry")
		s, _ := h.node.State(h.ns, "retry", "app")
		if s.RestoredCounter != archived.Counter || s.MemoryBytes != archived.MemoryBytes {
			t.Errorf("state %+v after retry", s)
		}
		// The pull that succeeded, not the failed attempts and the back-off.
		if s.RestorePullSeconds <= 0 || s.RestorePullSeconds >= h.node.cfg.BackoffInitial.Seconds() {
			t.Errorf("restore pull %gs after a retry", s.RestorePullSeconds)
		}
	})

	t.Run("BadMemoryAnnotation", func(t *testing.T) {
		h.createPod(t, h.node, "bad-annotation", "busybox", withAnnotation(MemoryBytesAnnotation, "lots"))
		w := h.waitWaiting(t, "bad-annotation", "CreateContainerError")
		if !strings.Contains(w.Message, MemoryBytesAnnotation) {
			t.Errorf("message %q", w.Message)
		}
		h.createPod(t, h.node, "small", "busybox", withAnnotation(MemoryBytesAnnotation, "4096"))
		h.waitRunning(t, "small")
		if s, _ := h.node.State(h.ns, "small", "app"); s.MemoryBytes != 4096 {
			t.Errorf("memory %d, want 4096", s.MemoryBytes)
		}
	})

	t.Run("DeletedPodStops", func(t *testing.T) {
		if err := h.cs.CoreV1().Pods(h.ns).Delete(t.Context(), "source", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "terminating pod removed", func() (bool, string) {
			_, err := h.cs.CoreV1().Pods(h.ns).Get(t.Context(), "source", metav1.GetOptions{})
			_, running := h.node.State(h.ns, "source", "app")
			return apierrors.IsNotFound(err) && !running, ""
		})
		code, body, _ := kubeletCall(t, h.node, http.MethodPost, h.allowed, "/checkpoint/"+h.ns+"/source/app")
		if code != 404 || body != "pod does not exist" {
			t.Errorf("checkpoint of a deleted pod: %d %q", code, body)
		}
	})
}

// checkNoRestoreTimings checks that a container that was not restored
// reports no restore timings, not even as zeros in its JSON.
func checkNoRestoreTimings(t *testing.T, s ContainerState) {
	t.Helper()
	if s.RestorePullSeconds != 0 || s.RestoreRuntimeSeconds != 0 {
		t.Errorf("restore timings of a cold start: pull %gs, runtime %gs", s.RestorePullSeconds, s.RestoreRuntimeSeconds)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"restorePullSeconds", "restoreRuntimeSeconds"} {
		if _, ok := fields[k]; ok {
			t.Errorf("%s in the state of a cold start: %s", k, b)
		}
	}
}
