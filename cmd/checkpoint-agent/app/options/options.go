// Package options holds every flag of the checkpoint agent.
package options

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// Options are the checkpoint agent's settings.
type Options struct {
	// NodeName is the node this agent serves (downward API spec.nodeName).
	NodeName string
	// Namespace is the agent's own namespace (downward API); registry
	// credentials Secrets are read only there.
	Namespace  string
	Kubeconfig string

	KubeletCA                    string
	KubeletInsecureSkipTLSVerify bool
	KubeletServerName            string
	TokenFile                    string

	CheckpointDir string
	WorkDir       string
	JournalDir    string

	Builders           []string
	BuildahPath        string
	BuildahRoot        string
	BuildahRunRoot     string
	BuildahDriver      string
	BuildahTmpDir      string
	InsecureRegistries []string

	RequireSecretNamespaces bool

	MaxConcurrent int
	MaxAttempts   int32
	KubeAPIQPS    float32
	KubeAPIBurst  int
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	PodWait       time.Duration

	KubeletTimeout time.Duration
	PushTimeout    time.Duration
	VerifyTimeout  time.Duration

	MetricsBindAddress     string
	MetricsSecure          bool
	MetricsCertDir         string
	HealthProbeBindAddress string
}

// New returns the defaults, which match artifacts/agent's DaemonSet.
func New() *Options {
	return &Options{
		NodeName:               os.Getenv("NODE_NAME"),
		Namespace:              os.Getenv("POD_NAMESPACE"),
		TokenFile:              "/var/run/secrets/kubernetes.io/serviceaccount/token",
		CheckpointDir:          "/var/lib/kubelet/checkpoints",
		WorkDir:                "/run/stateshift/work",
		Builders:               []string{"buildah", "native"},
		BuildahPath:            "buildah",
		BuildahRoot:            "/var/lib/stateshift/buildah/storage",
		BuildahRunRoot:         "/run/stateshift/buildah",
		BuildahDriver:          "overlay",
		MaxConcurrent:          2,
		MaxAttempts:            5,
		KubeAPIQPS:             20,
		KubeAPIBurst:           40,
		BackoffBase:            2 * time.Second,
		BackoffMax:             time.Minute,
		PodWait:                2 * time.Minute,
		KubeletTimeout:         4 * time.Minute,
		PushTimeout:            30 * time.Minute,
		VerifyTimeout:          2 * time.Minute,
		MetricsBindAddress:     "127.0.0.1:8080",
		HealthProbeBindAddress: ":8081",
	}
}

// AddFlags registers every flag.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "Node this agent serves; only Checkpoints of pods on it are executed (default $NODE_NAME).")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "The agent's namespace; registry credentials Secrets are read only there (default $POD_NAMESPACE).")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Kubeconfig of the member cluster; empty means in-cluster.")
	fs.StringVar(&o.KubeletCA, "kubelet-ca", o.KubeletCA, "CA bundle that verifies the kubelet's serving certificate.")
	fs.BoolVar(&o.KubeletInsecureSkipTLSVerify, "kubelet-insecure-skip-tls-verify", o.KubeletInsecureSkipTLSVerify, "Accept any kubelet certificate. Only for kubelets with self-signed certificates and no CA to verify them.")
	fs.StringVar(&o.KubeletServerName, "kubelet-server-name", o.KubeletServerName, "Name expected in the kubelet's certificate (default: the node address).")
	fs.StringVar(&o.TokenFile, "token-file", o.TokenFile, "Projected service-account token sent to the kubelet; re-read on every call.")
	fs.StringVar(&o.CheckpointDir, "checkpoint-dir", o.CheckpointDir, "The kubelet's checkpoint folder as mounted in the agent; archives outside it are refused.")
	fs.StringVar(&o.WorkDir, "work-dir", o.WorkDir, "Private folder for short-lived files (registry auth files, config.dump, buildah's staging); created 0700. Put it on a memory-backed volume: what is in it is secret.")
	fs.StringVar(&o.JournalDir, "journal-dir", o.JournalDir, "Folder recording which archives unfinished checkpoints may have left (names and paths only), so that a restarted agent deletes them; put it where it outlives a node reboot, as the archives do. Empty means <work-dir>/journal.")
	fs.StringSliceVar(&o.Builders, "builders", o.Builders, "Image builders this agent offers: buildah, native.")
	fs.StringVar(&o.BuildahPath, "buildah", o.BuildahPath, "The buildah program.")
	fs.StringVar(&o.BuildahRoot, "buildah-root", o.BuildahRoot, "buildah --root: the agent's own image storage.")
	fs.StringVar(&o.BuildahRunRoot, "buildah-runroot", o.BuildahRunRoot, "buildah --runroot.")
	fs.StringVar(&o.BuildahDriver, "buildah-storage-driver", o.BuildahDriver, "buildah --storage-driver: overlay or vfs.")
	fs.StringVar(&o.BuildahTmpDir, "buildah-tmp-dir", o.BuildahTmpDir, "buildah's TMPDIR, where commit stages a copy of the layer (as large as the archive): a private folder, emptied at start. Empty means <work-dir>/buildah-tmp.")
	fs.StringSliceVar(&o.InsecureRegistries, "insecure-registries", o.InsecureRegistries, "Registry hosts (host:port) spoken to over plain HTTP.")
	fs.BoolVar(&o.RequireSecretNamespaces, "require-secret-namespaces", o.RequireSecretNamespaces, "Refuse registry Secrets without the annotation stateshift.io/allowed-namespaces; without this flag such a Secret serves every namespace (a Secret with the annotation is always enforced).")
	fs.IntVar(&o.MaxConcurrent, "max-concurrent", o.MaxConcurrent, "Checkpoints executed at once on this node.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second to the member's API server (status writes, reads, Events). Each Checkpoint costs about six; raise it with --max-concurrent.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of requests to the member's API server above --kube-api-qps.")
	fs.Int32Var(&o.MaxAttempts, "max-attempts", o.MaxAttempts, "Attempts per Checkpoint before it is Failed.")
	fs.DurationVar(&o.BackoffBase, "retry-backoff", o.BackoffBase, "First retry delay; doubles per attempt.")
	fs.DurationVar(&o.BackoffMax, "retry-backoff-max", o.BackoffMax, "Longest retry delay.")
	fs.DurationVar(&o.PodWait, "pod-wait", o.PodWait, "How long a Checkpoint waits for its pod to exist before it fails.")
	fs.DurationVar(&o.KubeletTimeout, "kubelet-timeout", o.KubeletTimeout, "Timeout given to the kubelet for one container when a Checkpoint sets no timeoutSeconds; the HTTP call ends 30s after it.")
	fs.DurationVar(&o.PushTimeout, "push-timeout", o.PushTimeout, "Deadline of building and pushing one image (registry writes, buildah push).")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", o.VerifyTimeout, "Deadline of reading one pushed image back by digest.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of /metrics (plain HTTP on loopback by default; with --metrics-secure any address); 0 disables.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure, "Serve /metrics over HTTPS to callers whose bearer token the API server authenticates (TokenReview) and authorizes for get on the non-resource URL /metrics (SubjectAccessReview).")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", o.MetricsCertDir, "Folder with tls.crt and tls.key for --metrics-secure; empty: a self-signed certificate made at start (scrapers then skip verification).")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz.")
}

// Validate reports every invalid setting at once.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name (or $NODE_NAME) is required"))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace (or $POD_NAMESPACE) is required"))
	}
	if o.KubeletCA != "" && o.KubeletInsecureSkipTLSVerify {
		errs = append(errs, errors.New("--kubelet-ca and --kubelet-insecure-skip-tls-verify exclude each other"))
	}
	if len(o.Builders) == 0 {
		errs = append(errs, errors.New("--builders needs at least one of buildah, native"))
	}
	for _, b := range o.Builders {
		if b != "buildah" && b != "native" {
			errs = append(errs, fmt.Errorf("--builders: unknown builder %q (buildah, native)", b))
		}
	}
	if o.BuildahDriver != "overlay" && o.BuildahDriver != "vfs" {
		errs = append(errs, fmt.Errorf("--buildah-storage-driver %q: overlay or vfs", o.BuildahDriver))
	}
	if o.MaxConcurrent < 1 {
		errs = append(errs, errors.New("--max-concurrent must be at least 1"))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, errors.New("--kube-api-qps must be > 0 and --kube-api-burst at least 1"))
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, errors.New("--max-attempts must be at least 1"))
	}
	if o.KubeletTimeout <= 0 || o.PushTimeout <= 0 || o.VerifyTimeout <= 0 {
		errs = append(errs, errors.New("--kubelet-timeout, --push-timeout and --verify-timeout must be > 0: every network call has a deadline"))
	}
	if o.BackoffBase <= 0 || o.BackoffMax < o.BackoffBase {
		errs = append(errs, errors.New("--retry-backoff must be > 0 and <= --retry-backoff-max"))
	}
	if o.MetricsCertDir != "" && !o.MetricsSecure {
		errs = append(errs, errors.New("--metrics-cert-dir needs --metrics-secure"))
	}
	return errors.Join(errs...)
}
