package framework

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1 "k8s.io/api/apps/v1"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/nodesim"
)

// CheckpointPolicy protects the given workloads: a checkpoint of each pod
// every interval into local-up's registry (repository e2e/<ns>), built by
// the native builder, the 3 newest kept.
func CheckpointPolicy(ns, name string, interval time.Duration, onImpossible stateshiftv1alpha1.RestoreImpossibleAction, workloads ...client.Object) *stateshiftv1alpha1.CheckpointPolicy {
	p := &stateshiftv1alpha1.CheckpointPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: stateshiftv1alpha1.CheckpointPolicySpec{
			Repository:          RegistryHost() + "/e2e/" + ns,
			Builder:             stateshiftv1alpha1.BuilderNative,
			Schedule:            stateshiftv1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: interval}},
			Retention:           stateshiftv1alpha1.Retention{Keep: 3},
			OnRestoreImpossible: onImpossible,
		},
	}
	if os.Getenv("REGISTRY_AUTH") == "1" || fileExists(filepath.Join(RunDir(), "registry", "auth.json")) {
		p.Spec.CredentialsSecretRef = &stateshiftv1alpha1.SecretReference{Name: RegistrySecretName}
	}
	for _, w := range workloads {
		gvk := w.GetObjectKind().GroupVersionKind()
		p.Spec.ResourceSelectors = append(p.Spec.ResourceSelectors, stateshiftv1alpha1.WorkloadSelector{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: w.GetName(),
		})
	}
	return p
}

// RegistrySecretName is the dockerconfigjson Secret local-up creates in
// stateshift-system when the registry needs credentials.
const RegistrySecretName = "checkpoint-registry"

// WithState gives a Deployment's or StatefulSet's pods `bytes` of simulated
// memory (the node simulator's annotation), so checkpoints carry that much
// state.
func WithState(obj client.Object, bytes int64) client.Object {
	var meta *metav1.ObjectMeta
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta = &o.Spec.Template.ObjectMeta
	case *appsv1.StatefulSet:
		meta = &o.Spec.Template.ObjectMeta
	default:
		panic(fmt.Sprintf("WithState: %T is not a Deployment or StatefulSet", obj))
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[nodesim.MemoryBytesAnnotation] = strconv.FormatInt(bytes, 10)
	return obj
}

// Checkpoints lists the Checkpoints the controller made of a workload
// (label stateshift.io/workload=<kind lowercased>.<name>) in the Karmada API.
func (e *Env) Checkpoints(ctx context.Context, ns, kind, name string) ([]stateshiftv1alpha1.Checkpoint, error) {
	var l stateshiftv1alpha1.CheckpointList
	err := e.Karmada.List(ctx, &l, client.InNamespace(ns),
		client.MatchingLabels{"stateshift.io/workload": strings.ToLower(kind) + "." + name})
	return l.Items, err
}

// SavedState reads the state a checkpoint image holds (the simulator's
// checkpoint/nodesim-state.json in its single layer) from the registry.
func SavedState(ctx context.Context, image string) (nodesim.SavedState, error) {
	var st nodesim.SavedState
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		return st, fmt.Errorf("image %q: %w", image, err)
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(RegistryAuth(ref.Context().RegistryStr())))
	if err != nil {
		return st, fmt.Errorf("read %s: %w", image, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return st, fmt.Errorf("%s: want one layer, got %d (%v)", image, len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return st, fmt.Errorf("%s: layer: %w", image, err)
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return st, fmt.Errorf("%s: no %s in the layer", image, nodesim.StateFile)
		}
		if err != nil {
			return st, fmt.Errorf("%s: layer: %w", image, err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != nodesim.StateFile {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return st, fmt.Errorf("%s: %s: %w", image, nodesim.StateFile, err)
		}
		return st, json.Unmarshal(data, &st)
	}
}

// RegistryAuth is the registry credentials of host from local-up's auth file
// (REGISTRY_AUTH=1), anonymous when there is none.
func RegistryAuth(host string) authn.Authenticator {
	raw, err := os.ReadFile(filepath.Join(RunDir(), "registry", "auth.json"))
	if err != nil {
		return authn.Anonymous
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if json.Unmarshal(raw, &cfg) != nil {
		return authn.Anonymous
	}
	a, ok := cfg.Auths[host]
	if !ok {
		return authn.Anonymous
	}
	dec, err := base64.StdEncoding.DecodeString(a.Auth)
	if err != nil {
		return authn.Anonymous
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	return &authn.Basic{Username: user, Password: pass}
}

// PhaseLog records, in order, every phase a namespace's Migrations go
// through, from a watch on the Karmada API (a poll could miss a phase
// that lasts less than its period).
type PhaseLog struct {
	mu     sync.Mutex
	phases map[string][]PhaseAt
}

// PhaseAt is one observed phase and when the watch delivered it.
type PhaseAt struct {
	Phase stateshiftv1alpha1.MigrationPhase
	At    time.Time
}

// Phases returns the distinct successive phases of one Migration.
func (l *PhaseLog) Phases(migration string) []stateshiftv1alpha1.MigrationPhase {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []stateshiftv1alpha1.MigrationPhase
	for _, p := range l.phases[migration] {
		out = append(out, p.Phase)
	}
	return out
}

// First returns when a Migration was first seen in a phase (zero if never).
func (l *PhaseLog) First(migration string, phase stateshiftv1alpha1.MigrationPhase) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.phases[migration] {
		if p.Phase == phase {
			return p.At
		}
	}
	return time.Time{}
}

// WatchMigrations starts recording the phases of the Migrations in ns until
// the test ends.
func (e *Env) WatchMigrations(t testing.TB, ns string) *PhaseLog {
	t.Helper()
	wc, err := client.NewWithWatch(e.KarmadaConfig, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatalf("watch client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &PhaseLog{phases: map[string][]PhaseAt{}}
	w, err := wc.Watch(ctx, &stateshiftv1alpha1.MigrationList{}, client.InNamespace(ns))
	if err != nil {
		cancel()
		t.Fatalf("watch migrations in %s: %v", ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			m, ok := ev.Object.(*stateshiftv1alpha1.Migration)
			if !ok {
				continue
			}
			l.mu.Lock()
			list := l.phases[m.Name]
			if m.Status.Phase != "" && (len(list) == 0 || list[len(list)-1].Phase != m.Status.Phase) {
				l.phases[m.Name] = append(list, PhaseAt{Phase: m.Status.Phase, At: time.Now()})
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		cancel()
		<-done
	})
	return l
}

// LabelCluster sets a label on a Karmada Cluster and removes it when the
// test ends.
func (e *Env) LabelCluster(t testing.TB, cluster, key, value string) {
	t.Helper()
	patch := func(ctx context.Context, v any) error {
		body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: v}}})
		c, err := e.Cluster(ctx, cluster)
		if err != nil {
			return err
		}
		return e.Karmada.Patch(ctx, c, client.RawPatch(types.MergePatchType, body))
	}
	if err := patch(t.Context(), value); err != nil {
		t.Fatalf("label cluster %s %s=%s: %v", cluster, key, value, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := patch(ctx, nil); err != nil {
			t.Errorf("restore: unlabel cluster %s %s: %v", cluster, key, err)
		}
	})
}

// StopComponents stops local-up processes by the PIDs recorded in
// pids/<name>.pid (SIGKILL: a lost machine does not shut down cleanly).
// When the test ends those still stopped are started again
// (StartComponents).
func (e *Env) StopComponents(t testing.TB, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, n := range names {
			if !processRunning(e.RunDir, n) {
				e.StartComponents(t)
				return
			}
		}
	})
	for _, n := range names {
		pid, err := e.pid(n)
		if err != nil {
			t.Fatalf("stop %s: %v", n, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("stop %s (pid %d): %v", n, pid, err)
		}
		t.Logf("stopped %s (pid %d)", n, pid)
	}
	// Wait until they are gone (their ports free for the restart).
	for _, n := range names {
		for processRunning(e.RunDir, n) {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// StartComponents runs hack/local-up.sh, which starts what is not running
// (with the same flags, run folder and data), and waits for the members
// to be Ready in Karmada again.
func (e *Env) StartComponents(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(Root(), "hack", "local-up.sh"))
	// The binaries local-up built for this run are the code under test:
	// a restart reuses them instead of linking each again.
	cmd.Env = append(os.Environ(), "STATESHIFT_RUN_DIR="+e.RunDir, "STATESHIFT_LOCAL_REUSE_BINARIES=1")
	if fileExists(filepath.Join(e.RunDir, "registry", "auth.json")) && os.Getenv("REGISTRY_AUTH") == "" {
		cmd.Env = append(cmd.Env, "REGISTRY_AUTH=1")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("hack/local-up.sh (start stopped components): %v\n%s", err, tail(string(out), 30))
		return
	}
	// Where a restart spends its time: local-up's phase lines.
	var phases []string
	for _, line := range strings.Split(string(out), "\n") {
		if _, p, ok := strings.Cut(line, "] == "); ok {
			phases = append(phases, p)
		}
	}
	t.Logf("hack/local-up.sh phases: %s", strings.Join(phases, "; "))
	for _, m := range Members {
		for {
			ok, _, _ := e.ClusterReady(m)(ctx)
			if ok {
				break
			}
			if ctx.Err() != nil {
				t.Errorf("%s not Ready again", m)
				return
			}
			time.Sleep(PollInterval)
		}
	}
	t.Logf("stopped components started again in %v", time.Since(start).Round(100*time.Millisecond))
}

func (e *Env) pid(component string) (int, error) {
	b, err := os.ReadFile(filepath.Join(e.RunDir, "pids", component+".pid"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || !processRunning(e.RunDir, component) {
		return 0, fmt.Errorf("%s is not running", component)
	}
	return strconv.Atoi(f[0])
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
