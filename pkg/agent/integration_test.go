package agent_test

// Integration tests of the checkpoint agent against real components: a real
// kube-apiserver and etcd (envtest), real buildah, a real registry
// (docker-registry) and the node simulator, which stands in only for the
// kubelet and the container runtime. The agent runs in-process through the
// same app.Run the binary uses, authenticated as its ServiceAccount bound by
// artifacts/agent/rbac.yaml, so its RBAC is tested too.

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app"
	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/nodesim"
	"github.com/stateshift/stateshift/test/registry"
	"github.com/stateshift/stateshift/test/testenv"
)

const (
	agentNS   = "stateshift-system"
	appNS     = "shop"
	nodeIP    = "127.0.0.31"
	node2IP   = "127.0.0.33"
	fakeIP    = "127.0.0.1" // httptest's certificate names only 127.0.0.1
	memoryMiB = 2
)

type fixture struct {
	env      *testenv.Env
	cs       *kubernetes.Clientset
	reg      *registry.Registry
	authReg  *registry.Registry
	node     *nodesim.Node
	node2    *nodesim.Node
	agentCfg string // kubeconfig of the agent's ServiceAccount
	tokenDir string
}

func TestAgent(t *testing.T) {
	f := setup(t)

	// The node's own agent: the one that should do the work.
	startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir())

	for _, b := range []v1alpha1.Builder{v1alpha1.BuilderBuildah, v1alpha1.BuilderNative} {
		t.Run("checkpoint and restore with "+string(b), func(t *testing.T) { checkpointAndRestore(t, f, b) })
	}
	t.Run("registry credentials", func(t *testing.T) { credentials(t, f) })
	t.Run("registry down then back", func(t *testing.T) { registryOutage(t, f) })
	t.Run("kubelet runtime error", func(t *testing.T) { runtimeError(t, f) })
	t.Run("kubelet timeout", func(t *testing.T) { kubeletTimeout(t, f) })
	t.Run("pod not on this node", func(t *testing.T) { podElsewhere(t, f) })
	t.Run("unknown container", func(t *testing.T) {
		pod := runPod(t, f, "sim-node", "unknown-ctr", "")
		cp := newCheckpoint("unknown-ctr", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
		cp.Spec.Containers = []string{"nope"}
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, "ContainerNotFound", `has no container "nope"`)
	})
	t.Run("kubelet 401", func(t *testing.T) {
		stop := startAgent(t, f, "sim-node-2", f.agentCfg, f.rawToken(t, "not-a-token"), f.node2.CAFile(), f.node2.CheckpointDir())
		defer stop()
		failOnNode2(t, f, "authn", "KubeletUnauthorized", "rejected the agent's token")
	})
	t.Run("kubelet 403", func(t *testing.T) {
		// A token of a ServiceAccount without create on nodes/checkpoint.
		stop := startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "no-checkpoint-rights"), f.node2.CAFile(), f.node2.CheckpointDir())
		defer stop()
		failOnNode2(t, f, "authz", "KubeletForbidden", "needs create on nodes/checkpoint")
	})
	t.Run("archive outside the checkpoint folder", func(t *testing.T) {
		elsewhere := t.TempDir()
		stop := startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node2.CAFile(), elsewhere)
		defer stop()
		failOnNode2(t, f, "outside", "ArchiveRejected", "outside the checkpoint folder")
	})
	t.Run("kubelet garbage, 404 and vanished archive", func(t *testing.T) { fakeKubelet(t, f) })
	t.Run("concurrency is bounded per node", func(t *testing.T) { boundedConcurrency(t, f) })
	t.Run("agent killed mid-push", func(t *testing.T) { killedMidPush(t, f) })
	t.Run("agent killed, then its pod gone", func(t *testing.T) { killedThenPodGone(t, f) })
	t.Run("metrics", metricsRecorded)
}

// killedMidPush stops the agent while buildah pushes and starts it again:
// the Checkpoint completes with a new attempt, no image is recorded before
// it is verified, and no archive is left on the node.
func killedMidPush(t *testing.T, f *fixture) {
	agent := func() func() {
		return startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node2.CAFile(), f.node2.CheckpointDir())
	}
	stop := agent()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: appNS,
			Annotations: map[string]string{nodesim.MemoryBytesAnnotation: fmt.Sprint(64 << 20)}},
		Spec: corev1.PodSpec{NodeName: "sim-node-2", Containers: []corev1.Container{{Name: "db", Image: "docker.io/library/redis:7.4"}}},
	}
	must(t, f.env.Client.Create(t.Context(), pod))
	cp := newCheckpoint("killed", pod.Name, v1alpha1.BuilderBuildah, f.reg.Host)
	create(t, f, cp)
	eventually(t, 60*time.Second, func() error {
		got := getCheckpoint(t, f, cp.Name)
		if got.Status.Phase != v1alpha1.CheckpointPushing {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		return nil
	})
	stop()
	mid := getCheckpoint(t, f, cp.Name)
	if mid.Status.Phase != v1alpha1.CheckpointPushing || len(mid.Status.Containers) != 0 {
		t.Fatalf("after the kill: phase %s, images %+v (no image may be recorded before it is verified)", mid.Status.Phase, mid.Status.Containers)
	}
	defer agent()()
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
	if got.Status.Attempts != 2 {
		t.Errorf("succeeded after %d attempts, want 2 (the interrupted one and the resumed one)", got.Status.Attempts)
	}
	if _, err := checkpointimage.Verify(t.Context(), cp.Spec.Repository, strings.TrimPrefix(got.Status.Containers[0].Image, cp.Spec.Repository+"@"), "db", nil, name.Insecure); err != nil {
		t.Errorf("recorded image does not verify: %v", err)
	}
	// (The archive-outside-the-folder case leaves its archive on purpose:
	// the agent never deletes files it refused.)
	left, _ := os.ReadDir(f.node2.CheckpointDir())
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "checkpoint-"+pod.Name+"_") {
			t.Errorf("archive %s left on the node", e.Name())
		}
	}
}

// killedThenPodGone stops the agent while it checkpoints and deletes the
// pod before the agent comes back: the Checkpoint it had claimed ends
// Failed (PodNotFound) at once, saying why, instead of staying in progress
// for good; no archive is left on the node.
func killedThenPodGone(t *testing.T, f *fixture) {
	agent := func() func() {
		return startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node2.CAFile(), f.node2.CheckpointDir())
	}
	stop := agent()
	f.node2.InjectCheckpointDelay(3 * time.Second)
	defer f.node2.InjectCheckpointDelay(0)
	pod := runPod(t, f, "sim-node-2", "goes-away", "")
	cp := newCheckpoint("goes-away", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	create(t, f, cp)
	eventually(t, 60*time.Second, func() error {
		if got := getCheckpoint(t, f, cp.Name); got.Status.Phase != v1alpha1.CheckpointCheckpointing {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		return nil
	})
	stop()
	must(t, f.env.Client.Delete(t.Context(), pod, client.GracePeriodSeconds(0)))
	eventually(t, 30*time.Second, func() error {
		err := f.env.Client.Get(t.Context(), client.ObjectKeyFromObject(pod), &corev1.Pod{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there: %v", err)
		}
		return nil
	})
	defer agent()()
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
	wantMessage(t, got, "PodNotFound", "no longer exists")
	left, _ := os.ReadDir(f.node2.CheckpointDir())
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "checkpoint-"+pod.Name+"_") {
			t.Errorf("archive %s left on the node", e.Name())
		}
	}
}

// boundedConcurrency runs three slow checkpoints on a node whose agent may
// execute one at a time: their executions never overlap.
func boundedConcurrency(t *testing.T, f *fixture) {
	stop := startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node2.CAFile(), f.node2.CheckpointDir(),
		func(o *options.Options) { o.MaxConcurrent = 1 })
	defer stop()
	f.node2.InjectCheckpointDelay(700 * time.Millisecond)
	defer f.node2.InjectCheckpointDelay(0)
	var names []string
	for i := range 3 {
		pod := runPod(t, f, "sim-node-2", fmt.Sprintf("serial-%d", i), "")
		cp := newCheckpoint(fmt.Sprintf("serial-%d", i), pod.Name, v1alpha1.BuilderNative, f.reg.Host)
		create(t, f, cp)
		names = append(names, cp.Name)
	}
	type span struct{ from, to time.Time }
	var spans []span
	for _, n := range names {
		cp := waitPhase(t, f, n, v1alpha1.CheckpointSucceeded)
		spans = append(spans, span{cp.Status.StartTime.Time, cp.Status.CompletionTime.Time})
	}
	for i := range spans {
		for j := range spans {
			// metav1.Time has second precision: executions of ~1s that touch
			// count as overlapping only when one starts before the other ends.
			if i != j && spans[i].from.Before(spans[j].from) && spans[j].from.Before(spans[i].to) {
				t.Errorf("checkpoints %s and %s ran at the same time: %v and %v", names[i], names[j], spans[i], spans[j])
			}
		}
	}
}

// metricsRecorded reads the agent's Prometheus registry (what /metrics
// serves) after the runs above: durations per stage and builder, bytes, and
// failures by reason.
func metricsRecorded(t *testing.T) {
	families, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	for _, want := range []string{
		"stateshift_agent_stage_duration_seconds,builder=buildah,stage=checkpoint",
		"stateshift_agent_stage_duration_seconds,builder=buildah,stage=image",
		"stateshift_agent_stage_duration_seconds,builder=native,stage=verify",
		"stateshift_agent_archive_bytes_total,builder=native",
		"stateshift_agent_failures_total,reason=KubeletRuntimeError",
		"stateshift_agent_failures_total,reason=CredentialsInvalid",
		"stateshift_agent_push_failures_total,reason=CredentialsInvalid",
		"stateshift_agent_checkpoints_total,phase=Succeeded",
		"stateshift_agent_checkpoints_total,phase=Failed",
	} {
		if got[want] <= 0 {
			t.Errorf("metric %s not recorded (have %v)", want, got)
		}
	}
	if got["stateshift_agent_failures_total,reason=KubeletRuntimeError"] < 3 {
		t.Errorf("the injected runtime error failed 3 attempts, metrics count %v", got["stateshift_agent_failures_total,reason=KubeletRuntimeError"])
	}
}

func setup(t *testing.T) *fixture {
	t.Helper()
	env := testenv.Start(t)
	cs := kubernetes.NewForConfigOrDie(env.Config)
	f := &fixture{env: env, cs: cs, reg: registry.Start(t), authReg: registry.Start(t, registry.WithAuth("pusher", "correct-horse-battery")), tokenDir: t.TempDir()}
	env.Namespace(t, agentNS)
	env.Namespace(t, appNS)
	applyYAML(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "agent", "rbac.yaml"))
	// The agent reads only the registry Secrets its Role names.
	allowSecrets(t, env.Client, "good", "bad", "wrong-type", "no-credentials", "missing", "only-in-app-ns",
		"stall-creds", "anon-good", "other-tenant", "wrong-tenant")
	// A second ServiceAccount with every right of the agent but the kubelet's.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "no-checkpoint-rights", Namespace: agentNS}}
	must(t, env.Client.Create(t.Context(), sa))
	f.agentCfg = f.kubeconfigFor(t, "stateshift-checkpoint-agent")

	f.node = startNode(t, env, "sim-node", nodeIP, f.reg.Host, f.authReg.Host)
	f.node2 = startNode(t, env, "sim-node-2", node2IP, f.reg.Host, f.authReg.Host)
	return f
}

// allowSecrets adds names to the resourceNames of the agent's Role, as an
// operator does for each registry Secret.
func allowSecrets(t *testing.T, c client.Client, names ...string) {
	t.Helper()
	role := &rbacv1.Role{}
	must(t, c.Get(t.Context(), client.ObjectKey{Namespace: agentNS, Name: "stateshift-checkpoint-agent-credentials"}, role))
	role.Rules[0].ResourceNames = append(role.Rules[0].ResourceNames, names...)
	must(t, c.Update(t.Context(), role))
}

func startNode(t *testing.T, env *testenv.Env, nodeName, ip string, insecure ...string) *nodesim.Node {
	t.Helper()
	dir := t.TempDir()
	n, err := nodesim.New(nodesim.Config{
		NodeName: nodeName, IP: ip, KubeConfig: env.Config,
		CheckpointDir: filepath.Join(dir, "checkpoints"), DataDir: filepath.Join(dir, "data"),
		StateBytes: memoryMiB << 20, Tick: 100 * time.Millisecond,
		RuntimeRequestTimeout: time.Second, BackoffInitial: 200 * time.Millisecond, BackoffMax: time.Second,
		Registries: nodesim.RegistryOptions{InsecureHosts: insecure},
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	must(t, n.WaitReady(wctx))
	return n
}

// startAgent runs app.Run (what the binary runs) for one node until the
// returned stop is called or the test ends.
func startAgent(t *testing.T, f *fixture, nodeName, kubeconfig, tokenFile, kubeletCA, checkpointDir string, tune ...func(*options.Options)) (stop func()) {
	t.Helper()
	work := t.TempDir()
	o := options.New()
	o.NodeName, o.Namespace, o.Kubeconfig = nodeName, agentNS, kubeconfig
	o.TokenFile, o.KubeletCA, o.CheckpointDir = tokenFile, kubeletCA, checkpointDir
	o.WorkDir = filepath.Join(work, "work")
	o.BuildahRoot, o.BuildahRunRoot = filepath.Join(work, "buildah", "root"), filepath.Join(work, "buildah", "runroot")
	o.InsecureRegistries = []string{f.reg.Host, f.authReg.Host}
	o.MaxAttempts, o.BackoffBase, o.BackoffMax, o.PodWait = 3, 500*time.Millisecond, 2*time.Second, 5*time.Second
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	for _, fn := range tune {
		fn(o)
	}
	must(t, o.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, o) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent for %s: %v", nodeName, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) tokenFile(t *testing.T, sa string) string {
	t.Helper()
	tr, err := f.cs.CoreV1().ServiceAccounts(agentNS).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	must(t, err)
	return f.rawToken(t, tr.Status.Token)
}

func (f *fixture) rawToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(f.tokenDir, fmt.Sprintf("token-%d", time.Now().UnixNano()))
	must(t, os.WriteFile(p, []byte(token), 0o600))
	return p
}

// kubeconfigFor writes a kubeconfig that authenticates as the ServiceAccount.
func (f *fixture) kubeconfigFor(t *testing.T, sa string) string {
	t.Helper()
	tok, err := os.ReadFile(f.tokenFile(t, sa))
	must(t, err)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: f.env.Config.Host, CertificateAuthorityData: f.env.Config.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: string(tok)}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	cfg.CurrentContext = "test"
	p := filepath.Join(f.tokenDir, sa+".kubeconfig")
	must(t, clientcmd.WriteToFile(*cfg, p))
	return p
}

func applyYAML(t *testing.T, c client.Client, path string) {
	t.Helper()
	fh, err := os.Open(path)
	must(t, err)
	defer func() { _ = fh.Close() }()
	dec := yaml.NewYAMLOrJSONDecoder(fh, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		must(t, c.Create(t.Context(), u))
	}
}

func runPod(t *testing.T, f *fixture, nodeName, podName, image string) *corev1.Pod {
	t.Helper()
	if image == "" {
		image = "docker.io/library/redis:7.4"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: appNS,
			Annotations: map[string]string{nodesim.MemoryBytesAnnotation: fmt.Sprint(memoryMiB << 20)}},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "db", Image: image}}},
	}
	must(t, f.env.Client.Create(t.Context(), pod))
	eventually(t, 30*time.Second, func() error {
		got := &corev1.Pod{}
		if err := f.env.Client.Get(t.Context(), client.ObjectKeyFromObject(pod), got); err != nil {
			return err
		}
		if got.Status.Phase != corev1.PodRunning && nodeName != "fake-node" {
			return fmt.Errorf("pod %s is %s", podName, got.Status.Phase)
		}
		return nil
	})
	return pod
}

func newCheckpoint(name, pod string, b v1alpha1.Builder, registryHost string) *v1alpha1.Checkpoint {
	return &v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS},
		Spec: v1alpha1.CheckpointSpec{PodName: pod, Repository: registryHost + "/stateshift/" + name, Builder: b,
			Compression: v1alpha1.LayerCompressionNone},
	}
}

func create(t *testing.T, f *fixture, cp *v1alpha1.Checkpoint) {
	t.Helper()
	must(t, f.env.Client.Create(t.Context(), cp))
}

func getCheckpoint(t *testing.T, f *fixture, name string) *v1alpha1.Checkpoint {
	t.Helper()
	cp := &v1alpha1.Checkpoint{}
	must(t, f.env.Client.Get(t.Context(), client.ObjectKey{Namespace: appNS, Name: name}, cp))
	return cp
}

func waitPhase(t *testing.T, f *fixture, name string, phase v1alpha1.CheckpointPhase) *v1alpha1.Checkpoint {
	t.Helper()
	var cp *v1alpha1.Checkpoint
	eventually(t, 90*time.Second, func() error {
		cp = getCheckpoint(t, f, name)
		if cp.Status.Phase != phase {
			return fmt.Errorf("checkpoint %s is %q (%s), want %s", name, cp.Status.Phase, cp.Status.Message, phase)
		}
		return nil
	})
	return cp
}

func wantMessage(t *testing.T, cp *v1alpha1.Checkpoint, reason, contains string) {
	t.Helper()
	ready := meta.FindStatusCondition(cp.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != reason {
		t.Errorf("Ready condition = %+v, want False/%s", ready, reason)
	}
	if !strings.Contains(cp.Status.Message, contains) || ready == nil || !strings.Contains(ready.Message, contains) {
		t.Errorf("message %q does not say %q", cp.Status.Message, contains)
	}
}

func checkpointAndRestore(t *testing.T, f *fixture, b v1alpha1.Builder) {
	pod := runPod(t, f, "sim-node", "app-"+string(b), "")
	time.Sleep(500 * time.Millisecond) // let the counter grow past zero
	cp := newCheckpoint("cp-"+string(b), pod.Name, b, f.reg.Host)
	create(t, f, cp)
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)

	// Status: one image by digest, sizes, timings, conditions.
	if len(got.Status.Containers) != 1 {
		t.Fatalf("status containers = %+v", got.Status.Containers)
	}
	c := got.Status.Containers[0]
	ref, err := name.NewDigest(c.Image, name.Insecure)
	if err != nil || !strings.HasPrefix(c.Image, cp.Spec.Repository+"@sha256:") {
		t.Fatalf("image %q is not %s@sha256:...: %v", c.Image, cp.Spec.Repository, err)
	}
	if c.Name != "db" || c.RootfsImage != "docker.io/library/redis:7.4" || c.ArchiveBytes <= memoryMiB<<20 || got.Status.ArchiveBytes != c.ArchiveBytes {
		t.Errorf("container status %+v, archiveBytes %d", c, got.Status.ArchiveBytes)
	}
	if got.Status.NodeName != "sim-node" || got.Status.Attempts != 1 || got.Status.Timings.Checkpoint == nil || got.Status.Timings.Image == nil || got.Status.Timings.Total == nil {
		t.Errorf("status %+v", got.Status)
	}
	// kubectl's Took column shows milliseconds, not nanoseconds.
	for _, d := range []*metav1.Duration{got.Status.Timings.Checkpoint, got.Status.Timings.Image, got.Status.Timings.Total} {
		if d != nil && d.Duration%time.Millisecond != 0 {
			t.Errorf("timing %s is not in whole milliseconds", d.Duration)
		}
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) ||
		!meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionPushed) ||
		!meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionCheckpointed) {
		t.Errorf("conditions %+v", got.Status.Conditions)
	}

	// The archive is gone from the node.
	left, _ := os.ReadDir(f.node.CheckpointDir())
	for _, e := range left {
		if strings.Contains(e.Name(), pod.Name) {
			t.Errorf("archive %s left on the node", e.Name())
		}
	}

	// The registry holds an OCI manifest with both annotations and one layer
	// that is the archive: same size, the CRI-O layout, the node's memory.
	desc, err := remote.Get(ref)
	must(t, err)
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", desc.MediaType)
	}
	img, err := desc.Image()
	must(t, err)
	m, err := img.Manifest()
	must(t, err)
	if m.Annotations[checkpointimage.AnnotationCRIO] != "db" || m.Annotations[checkpointimage.AnnotationCRIU] != "db" {
		t.Errorf("manifest annotations %v", m.Annotations)
	}
	layers, err := img.Layers()
	must(t, err)
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	must(t, err)
	saved, size := readArchive(t, rc)
	// The native builder pushes the archive itself; buildah unpacks it at /
	// and re-tars it, so only the files (checked above) are equal.
	if b == v1alpha1.BuilderNative && size != c.ArchiveBytes {
		t.Errorf("layer holds %d bytes of tar, the archive had %d", size, c.ArchiveBytes)
	}

	// The simulator restores that state from the image.
	restored := runPod(t, f, "sim-node", "restored-"+string(b), c.Image)
	eventually(t, 30*time.Second, func() error {
		st, ok := f.node.State(appNS, restored.Name, "db")
		if !ok || st.RestoredFrom == "" {
			return fmt.Errorf("not restored yet: %+v", st)
		}
		if st.RestoredCounter != saved.Counter || st.RestoredMemorySHA256 != saved.MemorySHA256 {
			return fmt.Errorf("restored counter %d memory %s, the image holds %d %s", st.RestoredCounter, st.RestoredMemorySHA256, saved.Counter, saved.MemorySHA256)
		}
		return nil
	})

	// Events on the Checkpoint and on the pod.
	for _, kind := range []string{"Checkpoint", "Pod"} {
		obj := cp.Name
		if kind == "Pod" {
			obj = pod.Name
		}
		eventually(t, 10*time.Second, func() error { return hasEvent(t, f, kind, obj, "CheckpointSucceeded") })
	}
}

// readArchive walks the tar in the image layer: the CRI-O layout and the
// simulator's saved state, with the hash of the memory pages it holds.
func readArchive(t *testing.T, r io.ReadCloser) (nodesim.SavedState, int64) {
	t.Helper()
	defer func() { _ = r.Close() }()
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	var saved nodesim.SavedState
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		seen[strings.TrimSuffix(h.Name, "/")] = true
		if h.Name == "checkpoint/nodesim-state.json" {
			must(t, json.NewDecoder(tr).Decode(&saved))
		}
	}
	_, _ = io.Copy(io.Discard, cr)
	for _, want := range []string{"config.dump", "spec.dump", "checkpoint", "checkpoint/pages-1.img", "checkpoint/inventory.img"} {
		if !seen[want] {
			t.Errorf("layer lacks %s (has %v)", want, seen)
		}
	}
	if saved.MemorySHA256 == "" {
		t.Errorf("layer lacks the saved state")
	}
	return saved, cr.n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func hasEvent(t *testing.T, f *fixture, kind, objName, reason string) error {
	list := &eventsv1.EventList{}
	if err := f.env.Client.List(t.Context(), list, client.InNamespace(appNS)); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == objName && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event on %s %s", reason, kind, objName)
}

func dockerSecret(t *testing.T, f *fixture, secretName, host, user, password string) {
	t.Helper()
	dockerSecretIn(t, f, agentNS, secretName, host, user, password)
}

func dockerSecretIn(t *testing.T, f *fixture, namespace, secretName, host, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: namespace}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}}
	must(t, f.env.Client.Create(t.Context(), s))
}

func credentials(t *testing.T, f *fixture) {
	pod := runPod(t, f, "sim-node", "creds", "")
	dockerSecret(t, f, "good", f.authReg.Host, "pusher", "correct-horse-battery")
	dockerSecret(t, f, "bad", f.authReg.Host, "pusher", "wrong-password")
	// The API server validates dockerconfigjson syntax; what it lets
	// through and the agent must still refuse: a wrong type, no credentials.
	wrongType := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "wrong-type", Namespace: agentNS}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"password": []byte("correct-horse-battery")}}
	must(t, f.env.Client.Create(t.Context(), wrongType))
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "no-credentials", Namespace: agentNS}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + f.authReg.Host + `":{"email":"x@example.com"}}}`)}}
	must(t, f.env.Client.Create(t.Context(), empty))
	// A Secret of the right name in the Checkpoint's own namespace must not be used.
	dockerSecretIn(t, f, appNS, "only-in-app-ns", f.authReg.Host, "pusher", "correct-horse-battery")

	for _, b := range []v1alpha1.Builder{v1alpha1.BuilderNative, v1alpha1.BuilderBuildah} {
		cp := newCheckpoint("creds-good-"+string(b), pod.Name, b, f.authReg.Host)
		cp.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "good"}
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
		// Anonymous reads are refused: the image really needs the credentials.
		if _, err := remote.Get(mustDigest(t, got.Status.Containers[0].Image)); err == nil {
			t.Errorf("anonymous read of %s succeeded; the registry is not enforcing auth", got.Status.Containers[0].Image)
		}
		if _, err := remote.Get(mustDigest(t, got.Status.Containers[0].Image), remote.WithAuth(&authn.Basic{Username: "pusher", Password: "correct-horse-battery"})); err != nil {
			t.Errorf("read with credentials: %v", err)
		}
	}
	cases := []struct{ secret, reason, says string }{
		{"bad", "PushFailed", "unauthorized"},
		{"missing", "CredentialsInvalid", "not found"},
		{"wrong-type", "CredentialsInvalid", "has type \"Opaque\""},
		{"no-credentials", "CredentialsInvalid", "no usable credentials"},
		{"only-in-app-ns", "CredentialsInvalid", "not found"},
	}
	for _, tc := range cases {
		cp := newCheckpoint("creds-"+tc.secret, pod.Name, v1alpha1.BuilderNative, f.authReg.Host)
		cp.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: tc.secret}
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, tc.reason, tc.says)
		if strings.Contains(got.Status.Message, "wrong-password") || strings.Contains(got.Status.Message, "correct-horse") {
			t.Errorf("a password leaked into the status: %s", got.Status.Message)
		}
	}
	// Failed attempts leave no archive behind either.
	if left, _ := os.ReadDir(f.node.CheckpointDir()); len(left) != 0 {
		t.Errorf("archives left on the node: %v", left)
	}
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s, name.Insecure)
	must(t, err)
	return d
}

func registryOutage(t *testing.T, f *fixture) {
	pod := runPod(t, f, "sim-node", "outage", "")
	f.reg.Stop()
	cp := newCheckpoint("outage", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	create(t, f, cp)
	eventually(t, 60*time.Second, func() error {
		got := getCheckpoint(t, f, cp.Name)
		if got.Status.Attempts < 1 || !strings.Contains(got.Status.Message, "retrying") {
			return fmt.Errorf("no failed attempt yet: %s %q", got.Status.Phase, got.Status.Message)
		}
		return nil
	})
	f.reg.Start()
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
	if got.Status.Attempts < 2 {
		t.Errorf("succeeded after %d attempts; expected a retry", got.Status.Attempts)
	}
}

func runtimeError(t *testing.T, f *fixture) {
	pod := runPod(t, f, "sim-node", "runtime-error", "")
	f.node.InjectCheckpointError(errors.New("criu dump failed: injected by the test"))
	defer f.node.InjectCheckpointError(nil)
	cp := newCheckpoint("runtime-error", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	create(t, f, cp)
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
	wantMessage(t, got, "KubeletRuntimeError", "injected by the test")
	if got.Status.Attempts != 3 || !strings.Contains(got.Status.Message, "gave up after 3 attempts") {
		t.Errorf("attempts %d, message %q", got.Status.Attempts, got.Status.Message)
	}
}

func kubeletTimeout(t *testing.T, f *fixture) {
	pod := runPod(t, f, "sim-node", "slow", "")
	f.node.InjectCheckpointDelay(5 * time.Second)
	defer f.node.InjectCheckpointDelay(0)
	cp := newCheckpoint("slow", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	cp.Spec.TimeoutSeconds = 1
	create(t, f, cp)
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
	wantMessage(t, got, "KubeletRuntimeError", "DeadlineExceeded")
}

func podElsewhere(t *testing.T, f *fixture) {
	// No agent runs for sim-node-2 now: sim-node's agent must say why it waits.
	pod := runPod(t, f, "sim-node-2", "elsewhere", "")
	cp := newCheckpoint("elsewhere", pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	create(t, f, cp)
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointPending)
	wantMessage(t, got, "PodOnOtherNode", "runs on node sim-node-2: waiting for that node's checkpoint agent")
	if got.Status.NodeName != "" || got.Status.Attempts != 0 {
		t.Errorf("sim-node's agent claimed it: %+v", got.Status)
	}
	// Its own agent then does it.
	stop := startAgent(t, f, "sim-node-2", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node2.CAFile(), f.node2.CheckpointDir())
	defer stop()
	got = waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
	if got.Status.NodeName != "sim-node-2" {
		t.Errorf("executed by %s", got.Status.NodeName)
	}
}

var node2Pods int

func failOnNode2(t *testing.T, f *fixture, nameSuffix, reason, says string) {
	t.Helper()
	node2Pods++
	pod := runPod(t, f, "sim-node-2", fmt.Sprintf("n2-%s-%d", nameSuffix, node2Pods), "")
	cp := newCheckpoint("n2-"+nameSuffix, pod.Name, v1alpha1.BuilderNative, f.reg.Host)
	create(t, f, cp)
	got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
	wantMessage(t, got, reason, says)
}

// fakeKubelet answers for a node of its own with what a broken kubelet
// might: garbage, 404, an archive that vanished.
func fakeKubelet(t *testing.T, f *fixture) {
	checkpointDir := t.TempDir()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/garbage"):
			_, _ = w.Write([]byte("<html>certainly not json"))
		case strings.HasSuffix(r.URL.Path, "/vanished"):
			_, _ = fmt.Fprintf(w, `{"items":[%q]}`, filepath.Join(checkpointDir, "checkpoint-gone.tar"))
		default:
			http.Error(w, "pod does not exist", http.StatusNotFound)
		}
	}))
	l, err := net.Listen("tcp", net.JoinHostPort(fakeIP, "0"))
	must(t, err)
	srv.Listener = l
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	var p int32
	_, _ = fmt.Sscan(port, &p)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "fake-node"}}
	must(t, f.env.Client.Create(t.Context(), node))
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fakeIP}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = p
	must(t, f.env.Client.Status().Update(t.Context(), node))

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	must(t, os.WriteFile(caFile, pemCert(srv.Certificate().Raw), 0o600))
	stop := startAgent(t, f, "fake-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), caFile, checkpointDir)
	defer stop()

	for _, tc := range []struct{ ctr, reason, says string }{
		{"garbage", "KubeletBadResponse", "not {\"items\":[...]}"},
		{"notfound", "KubeletNotFound", "404"},
		{"vanished", "ArchiveRejected", "checkpoint-gone.tar"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "fake-" + tc.ctr, Namespace: appNS},
			Spec: corev1.PodSpec{NodeName: "fake-node", Containers: []corev1.Container{{Name: tc.ctr, Image: "busybox"}}}}
		must(t, f.env.Client.Create(t.Context(), pod))
		cp := newCheckpoint("fake-"+tc.ctr, pod.Name, v1alpha1.BuilderNative, f.reg.Host)
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, tc.reason, tc.says)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("after %s: %v", timeout, err)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
