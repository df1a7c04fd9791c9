// Package options holds every flag of the interpreter webhook.
package options

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stateshift/stateshift/pkg/migration"
)

// Defaults, as in Karmada's own webhook where it has the same flag.
const (
	DefaultBindAddress = "0.0.0.0"
	DefaultSecurePort  = 8443
	DefaultCertDir     = "/var/run/stateshift/serving-certs"
)

// tlsVersions are the accepted --tls-min-version values.
var tlsVersions = map[string]uint16{
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// Options configure the webhook.
type Options struct {
	// BindAddress and SecurePort: where the HTTPS interpreter listens.
	BindAddress string
	SecurePort  int
	// CertDir holds CertName and KeyName; they are reloaded when rotated.
	CertDir  string
	CertName string
	KeyName  string
	// TLSMinVersion is 1.2 or 1.3.
	TLSMinVersion string
	// MetricsBindAddress serves /metrics ("0" disables).
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz.
	HealthProbeBindAddress string
	// Kubeconfig of the Karmada API server. The webhook itself needs no
	// API server; the controllers a later release adds to the same manager
	// (and leader election) do. Empty: in-cluster config if present, else
	// the webhook runs alone.
	Kubeconfig   string
	KubeAPIQPS   float32
	KubeAPIBurst int
	// LeaderElect elects a leader for the controllers (not for the webhook,
	// which every replica serves).
	LeaderElect             bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// PprofBindAddress serves net/http/pprof ("0" or empty disables).
	PprofBindAddress string
	// ShutdownTimeout bounds the graceful stop of in-flight requests.
	ShutdownTimeout time.Duration

	// Controllers turns the migration controllers on and off by name, as
	// Karmada's --controllers ("*", "name", "-name").
	Controllers []string
	// SecretNamespace is where the controllers read the registry
	// credentials Secrets the CheckpointPolicies name: the controller's own
	// namespace, independent of where the leader-election Lease lives.
	SecretNamespace string
	// ReconcileTimeout bounds every Reconcile of the controllers.
	ReconcileTimeout time.Duration
	// RequireRepositoryAllowlist refuses CheckpointPolicies in namespaces
	// without the stateshift.io/allowed-repositories annotation.
	RequireRepositoryAllowlist bool
	// ConcurrentSyncs: objects each migration controller reconciles at
	// once, and workloads of one policy handled at once.
	ConcurrentSyncs int
	// ScheduledCheckpointDeferral: how long a due scheduled checkpoint
	// waits while Migrations are in progress (0: never).
	ScheduledCheckpointDeferral time.Duration
	// CheckpointDelivery: how Checkpoints reach their member
	// (migration.DeliveryPropagation or migration.DeliveryProxy).
	CheckpointDelivery string

	// RestConfig is resolved by Complete; nil means no API server.
	RestConfig *rest.Config
}

// New returns the defaults.
func New() *Options {
	return &Options{
		BindAddress:            DefaultBindAddress,
		SecurePort:             DefaultSecurePort,
		CertDir:                DefaultCertDir,
		CertName:               "tls.crt",
		KeyName:                "tls.key",
		TLSMinVersion:          "1.3",
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8000",
		// Karmada's components default to 40; a round costs the
		// controllers about four requests per workload, and at 1,000
		// workloads 40 a second held its Checkpoints back (reconciles
		// ran into their deadline waiting on the client's rate limiter).
		KubeAPIQPS:              100,
		KubeAPIBurst:            200,
		LeaderElectionNamespace: "stateshift-system",
		LeaderElectionID:        "stateshift-interpreter-webhook",
		ShutdownTimeout:         30 * time.Second,
		Controllers:             []string{"*"},
		SecretNamespace:         migration.DefaultSecretNamespace,
		ReconcileTimeout:        migration.DefaultReconcileTimeout,
		ConcurrentSyncs:         migration.DefaultConcurrentSyncs,

		ScheduledCheckpointDeferral: migration.DefaultScheduledCheckpointDeferral,
		CheckpointDelivery:          migration.DeliveryProxy,
	}
}

// AddFlags registers the flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "The IP address on which to listen for the --secure-port port.")
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "The port on which to serve HTTPS.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "The directory with the serving certificate and key; a rotated pair is picked up without restart.")
	fs.StringVar(&o.CertName, "tls-cert-file-name", o.CertName, "The name of the serving certificate in --cert-dir.")
	fs.StringVar(&o.KeyName, "tls-private-key-file-name", o.KeyName, "The name of the serving key in --cert-dir.")
	fs.StringVar(&o.TLSMinVersion, "tls-min-version", o.TLSMinVersion, "Minimum TLS version: 1.2 or 1.3.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, `The address serving Prometheus metrics (e.g. 127.0.0.1:8080, :8080); "0" disables it.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "The address serving /healthz and /readyz.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to the Karmada API server's kubeconfig. Optional for the webhook alone; required by leader election and controllers. Empty: in-cluster config when available.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "QPS to the Karmada API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst to the Karmada API server.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader for the controllers (the webhook is served by every replica). Needs an API server.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "Namespace of the leader election Lease.")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "Name of the leader election Lease.")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress, `The address serving net/http/pprof for profiling (e.g. 127.0.0.1:6060); empty or "0" disables it.`)
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "How long to wait for in-flight requests on shutdown.")
	fs.StringSliceVar(&o.Controllers, "controllers", o.Controllers, fmt.Sprintf(
		"Migration controllers to run: '*' runs all, 'foo' runs foo, '-foo' turns foo off. All: %s.", strings.Join(migration.ControllerNames(), ", ")))
	fs.StringVar(&o.SecretNamespace, "secret-namespace", o.SecretNamespace, "Namespace of the registry credentials Secrets the CheckpointPolicies name (the controllers' own namespace).")
	fs.DurationVar(&o.ReconcileTimeout, "reconcile-timeout", o.ReconcileTimeout, "Upper bound of every reconcile of the migration controllers.")
	fs.IntVar(&o.ConcurrentSyncs, "concurrent-syncs", o.ConcurrentSyncs, "Objects each migration controller reconciles at once, and workloads of one CheckpointPolicy a round handles at once.")
	fs.DurationVar(&o.ScheduledCheckpointDeferral, "scheduled-checkpoint-deferral", o.ScheduledCheckpointDeferral,
		"How long a scheduled checkpoint that falls due may wait while Migrations are in progress, so that the moves' writes to the Karmada API go first; 0 never defers.")
	fs.StringVar(&o.CheckpointDelivery, "checkpoint-delivery", o.CheckpointDelivery, fmt.Sprintf(
		"How a Checkpoint reaches the member that runs its pod: %q (the controller writes the member's copy through Karmada's cluster proxy and mirrors its status: about half the CPU a checkpoint costs a federation; needs the chart's controller.checkpointDelivery=proxy RBAC) or %q (a PropagationPolicy; Karmada's binding, Work and status reflection).",
		migration.DeliveryProxy, migration.DeliveryPropagation))
	fs.BoolVar(&o.RequireRepositoryAllowlist, "require-repository-allowlist", o.RequireRepositoryAllowlist,
		"Take no checkpoint for a CheckpointPolicy whose namespace lacks the annotation stateshift.io/allowed-repositories (without it such a namespace may use any repository).")
}

// Validate checks the flags on their own.
func (o *Options) Validate() error {
	if o.SecurePort < 1 || o.SecurePort > 65535 {
		return fmt.Errorf("--secure-port %d: must be 1..65535", o.SecurePort)
	}
	if _, ok := tlsVersions[o.TLSMinVersion]; !ok {
		return fmt.Errorf("--tls-min-version %q: must be 1.2 or 1.3", o.TLSMinVersion)
	}
	if o.CertDir == "" || o.CertName == "" || o.KeyName == "" {
		return fmt.Errorf("--cert-dir, --tls-cert-file-name and --tls-private-key-file-name must be set")
	}
	for _, name := range []string{o.CertName, o.KeyName} {
		if filepath.Base(name) != name {
			return fmt.Errorf("certificate file name %q must be a plain file name inside --cert-dir", name)
		}
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
	}
	if o.ShutdownTimeout < 0 {
		return fmt.Errorf("--shutdown-timeout must not be negative")
	}
	if err := migration.ValidateControllers(o.Controllers); err != nil {
		return err
	}
	if o.SecretNamespace == "" {
		return fmt.Errorf("--secret-namespace must be set")
	}
	if o.ConcurrentSyncs < 1 {
		return fmt.Errorf("--concurrent-syncs must be at least 1")
	}
	if o.ScheduledCheckpointDeferral < 0 {
		return fmt.Errorf("--scheduled-checkpoint-deferral must not be negative")
	}
	if err := migration.ValidateCheckpointDelivery(o.CheckpointDelivery); err != nil {
		return fmt.Errorf("--checkpoint-delivery: %w", err)
	}
	if o.ReconcileTimeout <= 0 {
		return fmt.Errorf("--reconcile-timeout must be positive")
	}
	if o.LeaderElect && (o.LeaderElectionNamespace == "" || o.LeaderElectionID == "") {
		return fmt.Errorf("--leader-elect needs --leader-election-namespace and --leader-election-id")
	}
	return nil
}

// Complete resolves the API server configuration: --kubeconfig, else the
// in-cluster config, else none (the webhook alone; leader election refused).
func (o *Options) Complete() error {
	switch {
	case o.Kubeconfig != "":
		if _, err := os.Stat(o.Kubeconfig); err != nil {
			return fmt.Errorf("--kubeconfig: %w", err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return fmt.Errorf("--kubeconfig %s: %w", o.Kubeconfig, err)
		}
		o.RestConfig = cfg
	default:
		if cfg, err := rest.InClusterConfig(); err == nil {
			o.RestConfig = cfg
		}
	}
	if o.RestConfig != nil {
		o.RestConfig.QPS, o.RestConfig.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	}
	if o.LeaderElect && o.RestConfig == nil {
		return fmt.Errorf("--leader-elect needs an API server: give --kubeconfig or run in a cluster")
	}
	return nil
}

// TLSMinVersionID is the crypto/tls constant of TLSMinVersion.
func (o *Options) TLSMinVersionID() uint16 { return tlsVersions[o.TLSMinVersion] }
