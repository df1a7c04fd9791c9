// Package framework is the foundation of stateshift's end-to-end tests: it
// finds (or brings up with hack/local-up.sh) the local environment — a real
// Karmada control plane with two real member clusters on loopback — and gives
// tests typed clients for each cluster, the kubectl/karmadactl programs, the
// components' logs, and small waiting helpers.
package framework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/karmada-io/karmada/pkg/apis/apps/v1alpha1"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha1 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Member cluster names, as joined by hack/local-up.sh.
const (
	Member1 = "member1"
	Member2 = "member2"
)

// Members lists the member clusters.
var Members = []string{Member1, Member2}

// DefaultRunDir is local-up's run folder when STATESHIFT_RUN_DIR is unset.
const DefaultRunDir = "/tmp/stateshift-local"

// Env is a running local environment.
type Env struct {
	// RunDir is local-up's run folder (kubeconfigs, logs/, pids/, pki/).
	RunDir string
	// Karmada is a client of the Karmada API server.
	Karmada client.Client
	// KarmadaConfig is its REST config.
	KarmadaConfig *rest.Config
	// Members holds a client per member cluster (member1, member2).
	Members map[string]client.Client
	// MemberConfigs holds their REST configs.
	MemberConfigs map[string]*rest.Config
	// Kubectl and Karmadactl are the programs built by hack/build-deps.sh.
	Kubectl, Karmadactl string
	// StartedHere is true when Setup ran local-up because no environment was
	// running; Teardown then stops it.
	StartedHere bool
	// BringUp is how long Setup took.
	BringUp time.Duration
}

// Root is the repository's top folder.
func Root() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// RunDir is the run folder local-up uses.
func RunDir() string {
	if d := os.Getenv("STATESHIFT_RUN_DIR"); d != "" {
		return d
	}
	return DefaultRunDir
}

// Scheme knows Kubernetes' types, Karmada's (cluster, policy, work, apps,
// config) and stateshift's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(clusterv1alpha1.Install(s))
	utilruntime.Must(policyv1alpha1.Install(s))
	utilruntime.Must(workv1alpha1.Install(s))
	utilruntime.Must(workv1alpha2.Install(s))
	utilruntime.Must(appsv1alpha1.Install(s))
	utilruntime.Must(configv1alpha1.Install(s))
	utilruntime.Must(stateshiftv1alpha1.AddToScheme(s))
	return s
}

// Setup makes sure a local environment runs and connects to it. It always
// runs hack/local-up.sh, which is idempotent: on a running environment it
// only checks health and starts what is missing. StartedHere records whether
// the Karmada API server was running before, so Teardown stops only an
// environment this process brought up.
func Setup(ctx context.Context) (*Env, error) {
	start := time.Now()
	e := &Env{RunDir: RunDir()}
	e.StartedHere = !processRunning(e.RunDir, "karmada-apiserver")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(Root(), "hack", "local-up.sh"))
	cmd.Env = append(os.Environ(), "STATESHIFT_RUN_DIR="+e.RunDir)
	if _, err := os.Stat(filepath.Join(e.RunDir, "registry", "auth.json")); err == nil && os.Getenv("REGISTRY_AUTH") == "" {
		// Keep a running environment's registry mode (htpasswd on).
		cmd.Env = append(cmd.Env, "REGISTRY_AUTH=1")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return e, fmt.Errorf("hack/local-up.sh: %w", err)
	}
	var err error
	if e.Kubectl, err = cachedBinary("KUBE_BIN", "kubectl"); err != nil {
		return e, err
	}
	if e.Karmadactl, err = cachedBinary("KARMADA_BIN", "karmadactl"); err != nil {
		return e, err
	}
	s := Scheme()
	if e.KarmadaConfig, e.Karmada, err = connect(e.Kubeconfig("karmada"), s); err != nil {
		return e, err
	}
	e.Members = map[string]client.Client{}
	e.MemberConfigs = map[string]*rest.Config{}
	for _, m := range Members {
		cfg, c, err := connect(e.Kubeconfig(m), s)
		if err != nil {
			return e, err
		}
		e.MemberConfigs[m], e.Members[m] = cfg, c
	}
	e.BringUp = time.Since(start)
	return e, nil
}

// Teardown stops the environment when Setup started it, unless
// STATESHIFT_E2E_KEEP=1 asks to keep it for inspection.
func (e *Env) Teardown() error {
	if !e.StartedHere {
		return nil
	}
	if os.Getenv("STATESHIFT_E2E_KEEP") == "1" {
		fmt.Fprintf(os.Stderr, "keeping the local environment in %s (STATESHIFT_E2E_KEEP=1); stop it with hack/local-down.sh\n", e.RunDir)
		return nil
	}
	cmd := exec.Command("bash", filepath.Join(Root(), "hack", "local-down.sh"))
	cmd.Env = append(os.Environ(), "STATESHIFT_RUN_DIR="+e.RunDir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/local-down.sh: %w", err)
	}
	return nil
}

// Kubeconfig is the admin kubeconfig of "karmada", "member1" or "member2".
func (e *Env) Kubeconfig(cluster string) string {
	return filepath.Join(e.RunDir, cluster+".kubeconfig")
}

// KarmadaCtl runs karmadactl against the Karmada API server and returns its
// combined output.
func (e *Env) KarmadaCtl(ctx context.Context, args ...string) (string, error) {
	args = append(args, "--kubeconfig", e.Kubeconfig("karmada"))
	out, err := exec.CommandContext(ctx, e.Karmadactl, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("karmadactl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// KubeCtl runs kubectl against one cluster and returns its combined output.
func (e *Env) KubeCtl(ctx context.Context, cluster string, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", e.Kubeconfig(cluster)}, args...)
	out, err := exec.CommandContext(ctx, e.Kubectl, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LogTail returns the last n lines of a component's log (logs/<name>.log).
func (e *Env) LogTail(name string, n int) string {
	f, err := os.Open(filepath.Join(e.RunDir, "logs", name+".log"))
	if err != nil {
		return fmt.Sprintf("(no log for %s: %v)", name, err)
	}
	defer func() { _ = f.Close() }()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Components lists the names of the processes local-up recorded (pids/*.pid).
func (e *Env) Components() []string {
	files, _ := filepath.Glob(filepath.Join(e.RunDir, "pids", "*.pid"))
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".pid"))
	}
	return names
}

func connect(kubeconfig string, s *runtime.Scheme) (*rest.Config, client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", kubeconfig, err)
	}
	return cfg, c, nil
}

// cachedBinary finds a program in a folder hack/lib.sh names (KUBE_BIN, KARMADA_BIN).
func cachedBinary(dirVar, name string) (string, error) {
	out, err := exec.Command("bash", "-c", ". "+filepath.Join(Root(), "hack", "lib.sh")+" && echo \"$"+dirVar+"\"").Output()
	if err != nil {
		return "", fmt.Errorf("read %s from hack/lib.sh: %w", dirVar, err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w (hack/build-deps.sh builds it)", name, err)
	}
	return p, nil
}

// processRunning tells whether local-up's recorded process NAME still runs
// the program it recorded (the same test hack/local/lib.sh makes).
func processRunning(runDir, name string) bool {
	b, err := os.ReadFile(filepath.Join(runDir, "pids", name+".pid"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", fields[0], "stat"))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false
	}
	exe, err := os.Readlink(filepath.Join("/proc", fields[0], "exe"))
	if err != nil {
		return false
	}
	return exe == fields[1] || exe == fields[1]+" (deleted)"
}

// HostCluster is the Karmada host cluster local-up adds in chart mode
// (STATESHIFT_LOCAL_MODE=chart), where stateshift's chart is installed.
const HostCluster = "karmada-host"

// Connect returns a client of one cluster local-up runs ("karmada",
// "member1", "member2", HostCluster).
func (e *Env) Connect(cluster string) (client.Client, error) {
	_, c, err := connect(e.Kubeconfig(cluster), Scheme())
	return c, err
}

// ProcessRunning tells whether local-up started a component NAME that
// still runs (pids/NAME.pid).
func (e *Env) ProcessRunning(name string) bool { return processRunning(e.RunDir, name) }

// FailureLogDir is where failed tests keep their components' logs
// (STATESHIFT_E2E_FAILURE_LOGS overrides it). It is outside the run folder,
// which local-down removes, so a failed CI run can still be read afterwards.
func FailureLogDir() string {
	if d := os.Getenv("STATESHIFT_E2E_FAILURE_LOGS"); d != "" {
		return d
	}
	return "/var/tmp/stateshift-e2e-failures"
}

// keptFailureRuns bounds FailureLogDir: the oldest folders go first.
const keptFailureRuns = 20

// keepLogs copies the components' logs into a new folder of FailureLogDir
// named after the test and the time, and returns it.
func (e *Env) keepLogs(test string, components []string) (string, error) {
	root := FailureLogDir()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	pruneFailureRuns(root, keptFailureRuns-1)
	dir := filepath.Join(root, time.Now().UTC().Format("20060102T150405Z")+"-"+strings.ReplaceAll(test, "/", "_"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var errs []error
	for _, c := range components {
		if err := copyFile(filepath.Join(e.RunDir, "logs", c+".log"), filepath.Join(dir, c+".log")); err != nil {
			errs = append(errs, err)
		}
	}
	return dir, errors.Join(errs...)
}

// pruneFailureRuns leaves at most keep folders in root (names start with
// their UTC time, so they sort oldest first).
func pruneFailureRuns(root string, keep int) {
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) <= keep {
		return
	}
	for _, old := range entries[:len(entries)-keep] {
		_ = os.RemoveAll(filepath.Join(root, old.Name()))
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return out.Close()
}
