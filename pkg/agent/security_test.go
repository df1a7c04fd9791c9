package agent_test

// Security tests of the checkpoint agent (issue 12): what a node keeps after
// an agent is killed, what credentials each builder uses, deadlines.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/nodesim"
	"github.com/stateshift/stateshift/test/testenv"
)

// stallingRegistry is a reverse proxy in front of a real registry that,
// while stalled, holds every blob upload (a registry that accepted the
// connection and stopped answering) until the client gives up.
type stallingRegistry struct {
	Host string

	mu      sync.Mutex
	stalled bool
	release chan struct{}
	held    map[string]int // repository path -> uploads being held
}

func startStallingRegistry(t *testing.T, upstream string) *stallingRegistry {
	t.Helper()
	s := &stallingRegistry{release: make(chan struct{}), held: map[string]int{}}
	target := &url.URL{Scheme: "http", Host: upstream}
	proxy := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s.Host = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.mu.Lock()
			stalled, release := s.stalled, s.release
			repo := r.URL.Path[:strings.Index(r.URL.Path, "/blobs/uploads/")]
			if stalled {
				s.held[repo]++
			}
			s.mu.Unlock()
			if stalled {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				s.mu.Lock()
				s.held[repo]--
				s.mu.Unlock()
				http.Error(w, "stalled upload released", http.StatusServiceUnavailable)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { s.Stall(false); _ = srv.Close() })
	return s
}

// Stall starts or ends holding uploads; ending releases the held ones.
func (s *stallingRegistry) Stall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled && !on {
		close(s.release)
		s.release = make(chan struct{})
	}
	s.stalled = on
}

// Holding says whether an upload into repo (a path like /v2/x/y) is held.
func (s *stallingRegistry) Holding(repo string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[repo] > 0
}

var agentBinary struct {
	once sync.Once
	path string
	err  error
}

// buildAgent builds cmd/checkpoint-agent once per test binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	agentBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "stateshift-agent-bin-")
		if err != nil {
			agentBinary.err = err
			return
		}
		agentBinary.path = filepath.Join(dir, "checkpoint-agent")
		cmd := exec.Command("go", "build", "-o", agentBinary.path, "./cmd/checkpoint-agent")
		cmd.Dir = testenv.Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			agentBinary.err = fmt.Errorf("go build ./cmd/checkpoint-agent: %v\n%s", err, out)
		}
	})
	must(t, agentBinary.err)
	return agentBinary.path
}

// agentProcess is a checkpoint-agent binary running as a child process.
type agentProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
}

type agentDirs struct {
	work, journal, buildahRoot, buildahRunRoot string
}

func newAgentDirs(t *testing.T) agentDirs {
	d := t.TempDir()
	return agentDirs{work: filepath.Join(d, "work"), journal: filepath.Join(d, "journal"),
		buildahRoot: filepath.Join(d, "buildah", "root"), buildahRunRoot: filepath.Join(d, "buildah", "runroot")}
}

func runAgentProcess(t *testing.T, f *fixture, bin, nodeName string, node *nodesim.Node, dirs agentDirs, insecure ...string) *agentProcess {
	t.Helper()
	args := []string{
		"--node-name", nodeName, "--namespace", agentNS, "--kubeconfig", f.agentCfg,
		"--token-file", f.tokenFile(t, "stateshift-checkpoint-agent"), "--kubelet-ca", node.CAFile(),
		"--checkpoint-dir", node.CheckpointDir(), "--work-dir", dirs.work, "--journal-dir", dirs.journal,
		"--buildah-root", dirs.buildahRoot, "--buildah-runroot", dirs.buildahRunRoot,
		"--insecure-registries", strings.Join(insecure, ","),
		"--max-attempts", "3", "--retry-backoff", "500ms", "--retry-backoff-max", "2s",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "-v", "2",
	}
	// A file, not a pipe: Wait would also wait for any child still holding
	// a pipe's end.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	must(t, err)
	p := &agentProcess{cmd: exec.Command(bin, args...), log: logFile.Name(), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	must(t, p.cmd.Start())
	_ = logFile.Close()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("agent log (%s):\n%s", nodeName, tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// leftoversOnNode lists what the agent's runs left: archives of the pods in
// the kubelet's folder, stateshift's files in the work folder and the
// journal, and buildah's working containers and images.
func leftoversOnNode(t *testing.T, node *nodesim.Node, dirs agentDirs, pods ...string) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir(node.CheckpointDir())
	for _, e := range entries {
		for _, p := range pods {
			if strings.HasPrefix(e.Name(), "checkpoint-"+p+"_") {
				out = append(out, "archive "+e.Name())
			}
		}
	}
	for _, pattern := range []string{"stateshift-auth-*", "config-dump-*", "buildah-tmp/*", "buildah-home/*"} {
		m, _ := filepath.Glob(filepath.Join(dirs.work, pattern))
		for _, p := range m {
			out = append(out, "work "+strings.TrimPrefix(p, dirs.work+"/"))
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dirs.journal, "*")); len(m) > 0 {
		out = append(out, fmt.Sprintf("journal %v", m))
	}
	if m, _ := filepath.Glob(filepath.Join(dirs.buildahRunRoot, "stateshift-build-*")); len(m) > 0 {
		out = append(out, fmt.Sprintf("buildah build folder %v", m))
	}
	buildah := func(args ...string) string {
		cmd := exec.Command("buildah", append([]string{"--root", dirs.buildahRoot, "--runroot", dirs.buildahRunRoot, "--storage-driver", "overlay"}, args...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %v: %v: %s", args, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	if c := buildah("containers", "--all", "--noheading", "--format", "{{.ContainerName}}"); c != "" {
		out = append(out, "buildah containers "+c)
	}
	if i := buildah("images", "--all", "--noheading", "--format", "{{.Name}}:{{.Tag}}"); i != "" {
		out = append(out, "buildah images "+i)
	}
	return out
}

// TestSecurityKilledAgentLeavesNoMemoryDump SIGKILLs a real agent process
// while both builders push to a registry that stalls (archives on the node,
// auth files in the work folder, an unpacked archive in buildah's storage),
// and checks after a restart that the node folder is clean: the archive of a
// Checkpoint deleted meanwhile too, which only the journal knows of.
func TestSecurityKilledAgentLeavesNoMemoryDump(t *testing.T) {
	f := setup(t)
	bin := buildAgent(t)
	stall := startStallingRegistry(t, f.reg.Host)
	stall.Stall(true)
	dockerSecret(t, f, "stall-creds", stall.Host, "pusher", "not-checked-by-this-registry")
	dirs := newAgentDirs(t)
	agent := runAgentProcess(t, f, bin, "sim-node-2", f.node2, dirs, stall.Host)

	var pods []string
	byBuilder := map[v1alpha1.Builder]*v1alpha1.Checkpoint{}
	for _, b := range []v1alpha1.Builder{v1alpha1.BuilderBuildah, v1alpha1.BuilderNative} {
		pod := runPod(t, f, "sim-node-2", "kill-"+string(b), "")
		pods = append(pods, pod.Name)
		cp := newCheckpoint("kill-"+string(b), pod.Name, b, stall.Host)
		cp.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "stall-creds"}
		create(t, f, cp)
		byBuilder[b] = cp
	}
	for _, cp := range byBuilder {
		repo := "/v2/" + strings.TrimPrefix(cp.Spec.Repository, stall.Host+"/")
		eventually(t, 90*time.Second, func() error {
			if got := getCheckpoint(t, f, cp.Name); got.Status.Phase != v1alpha1.CheckpointPushing {
				return fmt.Errorf("checkpoint %s is %q (%s)", cp.Name, got.Status.Phase, got.Status.Message)
			}
			if !stall.Holding(repo) {
				return fmt.Errorf("no upload into %s held yet", repo)
			}
			return nil
		})
	}
	// Mid-push: the node holds archives, auth files and buildah's copy.
	before := leftoversOnNode(t, f.node2, dirs, pods...)
	for _, want := range []string{"archive checkpoint-kill-buildah_", "archive checkpoint-kill-native_", "work stateshift-auth-", "buildah images localhost/stateshift-build:", "journal"} {
		if !strings.Contains(strings.Join(before, "\n"), want) {
			t.Fatalf("mid-push the node should hold %q, it holds %v: the test does not kill at the right moment", want, before)
		}
	}
	must(t, agent.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-agent.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not die of SIGKILL")
	}
	// Its buildah push dies with it (Pdeathsig), or the sweep would race it.
	eventually(t, 10*time.Second, func() error {
		out, _ := exec.Command("pgrep", "-f", "buildah --root "+dirs.buildahRoot).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			return fmt.Errorf("buildah of the killed agent still runs: %s", out)
		}
		return nil
	})
	if after := leftoversOnNode(t, f.node2, dirs, pods...); len(after) < len(before) {
		t.Fatalf("the kill itself cleaned up (%v): nothing left to test", after)
	}

	// The native Checkpoint is deleted: no new attempt will look for its
	// archive. The registry answers again.
	must(t, f.env.Client.Delete(context.Background(), byBuilder[v1alpha1.BuilderNative]))
	stall.Stall(false)
	runAgentProcess(t, f, bin, "sim-node-2", f.node2, dirs, stall.Host)
	got := waitPhase(t, f, byBuilder[v1alpha1.BuilderBuildah].Name, v1alpha1.CheckpointSucceeded)
	if got.Status.Attempts != 2 {
		t.Errorf("buildah checkpoint succeeded after %d attempts, want 2", got.Status.Attempts)
	}
	eventually(t, 10*time.Second, func() error {
		if left := leftoversOnNode(t, f.node2, dirs, pods...); len(left) > 0 {
			return fmt.Errorf("after the restart the node still holds %v", left)
		}
		return nil
	})
}

// TestSecurityBuildersWithoutSecretAreAnonymous: with no registry Secret,
// both builders push anonymously, even when the node's own credential files
// (root's /run/containers/0/auth.json, ~/.docker/config.json) would log in.
// The registry requires a login, so both fail the same way, and with the
// Secret both succeed.
func TestSecurityBuildersWithoutSecretAreAnonymous(t *testing.T) {
	f := setup(t)
	// The node's credentials where buildah would find them by itself.
	home := t.TempDir()
	runtimeDir := t.TempDir()
	nodeAuth := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.authReg.Host, b64("pusher:correct-horse-battery"))
	must(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o700))
	must(t, os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(nodeAuth), 0o600))
	must(t, os.MkdirAll(filepath.Join(runtimeDir, "containers"), 0o700))
	must(t, os.WriteFile(filepath.Join(runtimeDir, "containers", "auth.json"), []byte(nodeAuth), 0o600))
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(runtimeDir, "containers", "auth.json"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))

	startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir())
	pod := runPod(t, f, "sim-node", "anon", "")
	dockerSecret(t, f, "anon-good", f.authReg.Host, "pusher", "correct-horse-battery")
	messages := map[v1alpha1.Builder]string{}
	for _, b := range []v1alpha1.Builder{v1alpha1.BuilderBuildah, v1alpha1.BuilderNative} {
		cp := newCheckpoint("anon-"+string(b), pod.Name, b, f.authReg.Host)
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, "PushFailed", "")
		messages[b] = got.Status.Message
		if !strings.Contains(strings.ToLower(got.Status.Message), "unauthorized") && !strings.Contains(strings.ToLower(got.Status.Message), "authentication required") {
			t.Errorf("%s without a Secret: %q, want an anonymous push refused by the registry", b, got.Status.Message)
		}
		// Nothing reached the registry: no builder logged in by itself.
		repo, err := name.NewRepository(cp.Spec.Repository, name.Insecure)
		must(t, err)
		if tags, err := remote.List(repo, remote.WithAuth(&authn.Basic{Username: "pusher", Password: "correct-horse-battery"})); err == nil && len(tags) > 0 {
			t.Errorf("%s without a Secret pushed %v to %s with the node's credentials", b, tags, repo)
		}
		withSecret := newCheckpoint("anon-secret-"+string(b), pod.Name, b, f.authReg.Host)
		withSecret.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "anon-good"}
		create(t, f, withSecret)
		waitPhase(t, f, withSecret.Name, v1alpha1.CheckpointSucceeded)
	}
	t.Logf("without a Secret: buildah %q; native %q", messages[v1alpha1.BuilderBuildah], messages[v1alpha1.BuilderNative])
}

// TestSecurityStalledRegistryEndsAtPushDeadline: a registry that accepts
// uploads and never answers ends the attempt at --push-timeout with reason
// PushTimeout, for both builders, instead of pinning the agent's slot.
func TestSecurityStalledRegistryEndsAtPushDeadline(t *testing.T) {
	f := setup(t)
	stall := startStallingRegistry(t, f.reg.Host)
	stall.Stall(true)
	startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir(),
		func(o *options.Options) {
			o.InsecureRegistries = append(o.InsecureRegistries, stall.Host)
			o.PushTimeout = 3 * time.Second
			o.MaxAttempts = 1
		})
	pod := runPod(t, f, "sim-node", "stalled", "")
	for _, b := range []v1alpha1.Builder{v1alpha1.BuilderBuildah, v1alpha1.BuilderNative} {
		cp := newCheckpoint("stalled-"+string(b), pod.Name, b, stall.Host)
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, "PushTimeout", "did not finish within 3s (--push-timeout)")
	}
	if left, _ := os.ReadDir(f.node.CheckpointDir()); len(left) != 0 {
		t.Errorf("archives left after the timeouts: %v", left)
	}
}

// TestSecurityRegistrySecretsByNameAndNamespace: the agent reads only the
// registry Secrets its Role names (not the webhook's TLS keys beside
// them), and a Secret bound to other namespaces is refused, not used.
func TestSecurityRegistrySecretsByNameAndNamespace(t *testing.T) {
	f := setup(t)
	startAgent(t, f, "sim-node", f.agentCfg, f.tokenFile(t, "stateshift-checkpoint-agent"), f.node.CAFile(), f.node.CheckpointDir())
	pod := runPod(t, f, "sim-node", "secrets", "")
	// A Secret the Role does not name, of the right type and credentials.
	dockerSecret(t, f, "stateshift-pod-restore-certs", f.authReg.Host, "pusher", "correct-horse-battery")
	dockerSecret(t, f, "other-tenant", f.authReg.Host, "pusher", "correct-horse-battery")
	s := &corev1.Secret{}
	must(t, f.env.Client.Get(t.Context(), client.ObjectKey{Namespace: agentNS, Name: "other-tenant"}, s))
	s.Annotations = map[string]string{registryauth.AnnotationAllowedNamespaces: "payments, billing"}
	must(t, f.env.Client.Update(t.Context(), s))

	for _, tc := range []struct{ secret, reason, says string }{
		{"stateshift-pod-restore-certs", "CredentialsInvalid", "the agent may not read Secret stateshift-system/stateshift-pod-restore-certs"},
		{"other-tenant", "CredentialsNotAllowed", "may not be used by namespace shop (its annotation stateshift.io/allowed-namespaces allows [payments billing])"},
	} {
		cp := newCheckpoint("secret-"+tc.secret, pod.Name, v1alpha1.BuilderNative, f.authReg.Host)
		cp.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: tc.secret}
		create(t, f, cp)
		got := waitPhase(t, f, cp.Name, v1alpha1.CheckpointFailed)
		wantMessage(t, got, tc.reason, tc.says)
		repo, err := name.NewRepository(cp.Spec.Repository, name.Insecure)
		must(t, err)
		if tags, err := remote.List(repo, remote.WithAuth(&authn.Basic{Username: "pusher", Password: "correct-horse-battery"})); err == nil && len(tags) > 0 {
			t.Errorf("%s: pushed %v", tc.secret, tags)
		}
	}
	// Allowed for its namespace, the same Secret works.
	s.Annotations[registryauth.AnnotationAllowedNamespaces] = "payments, " + appNS
	must(t, f.env.Client.Update(t.Context(), s))
	cp := newCheckpoint("secret-allowed", pod.Name, v1alpha1.BuilderNative, f.authReg.Host)
	cp.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "other-tenant"}
	create(t, f, cp)
	waitPhase(t, f, cp.Name, v1alpha1.CheckpointSucceeded)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
