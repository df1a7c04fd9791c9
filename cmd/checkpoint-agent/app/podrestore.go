package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/podrestore"
	"github.com/stateshift/stateshift/pkg/version"
)

// podRestoreOptions are the serving flags of the pod-restore webhook; the
// kubeconfig, metrics and health addresses are the agent's own flags.
type podRestoreOptions struct {
	BindAddress   string
	SecurePort    int
	CertDir       string
	TLSMinVersion string
	// RegistryAuthFile is a docker config.json (a mounted dockerconfigjson
	// Secret) used to read checkpoint manifests; missing means anonymous.
	RegistryAuthFile string
	// WebhookConfiguration is the MutatingWebhookConfiguration whose
	// restore-pending and restore-completed conditions this process keeps
	// in step with the member's completed restores; empty: left alone.
	WebhookConfiguration string
}

func (p *podRestoreOptions) validate() error {
	if p.SecurePort < 1 || p.SecurePort > 65535 {
		return fmt.Errorf("--secure-port %d: must be 1..65535", p.SecurePort)
	}
	if p.TLSMinVersion != "1.2" && p.TLSMinVersion != "1.3" {
		return fmt.Errorf("--tls-min-version %q: must be 1.2 or 1.3", p.TLSMinVersion)
	}
	if p.CertDir == "" || !filepath.IsAbs(p.CertDir) {
		return fmt.Errorf("--cert-dir %q: must be an absolute path holding tls.crt and tls.key", p.CertDir)
	}
	return nil
}

// newPodRestoreCommand serves the member-side mutating webhook that gives
// each pod of a restored workload its own checkpoint and keeps restores to
// once (pkg/podrestore). It runs as a Deployment beside the agent's
// DaemonSet, unprivileged: it reads workload metadata and writes only its
// own webhook configuration's conditions.
func newPodRestoreCommand(ctx context.Context, o *options.Options) *cobra.Command {
	p := &podRestoreOptions{BindAddress: "0.0.0.0", SecurePort: 9443, CertDir: "/var/run/stateshift/serving-certs", TLSMinVersion: "1.3",
		WebhookConfiguration: "stateshift-pod-restore"}
	cmd := &cobra.Command{
		Use:   "pod-restore-webhook",
		Short: "Serves the member cluster's mutating webhook for pods of restored workloads",
		Long: `pod-restore-webhook is called by the member's API server for pods created from a
pod template stateshift rewrote (annotation stateshift.io/restored-from). It sets a
StatefulSet pod's own checkpoint images (stateshift.io/pod-images) and starts a pod
from the template's original image once the workload's restore has completed
(stateshift.io/restore-completed): a restore happens once.

It also writes the completed restores of the member into its webhook
configuration's conditions (--webhook-configuration): pods of a completed
restore no longer need the webhook to be admitted.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := p.validate(); err != nil {
				return err
			}
			return runPodRestore(ctx, o, p)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.BindAddress, "bind-address", p.BindAddress, "The IP address on which to listen for the --secure-port port.")
	fs.IntVar(&p.SecurePort, "secure-port", p.SecurePort, "The port on which to serve HTTPS.")
	fs.StringVar(&p.CertDir, "cert-dir", p.CertDir, "The directory with tls.crt and tls.key; a rotated pair is picked up without restart.")
	fs.StringVar(&p.TLSMinVersion, "tls-min-version", p.TLSMinVersion, "Minimum TLS version: 1.2 or 1.3.")
	fs.StringVar(&p.WebhookConfiguration, "webhook-configuration", p.WebhookConfiguration, "The MutatingWebhookConfiguration whose restore-pending and restore-completed matchConditions list the member's completed restores (so that their pods are admitted without the webhook); empty leaves it alone, and every restored pod then needs the webhook.")
	fs.StringVar(&p.RegistryAuthFile, "registry-auth-file", p.RegistryAuthFile, "docker config.json (a mounted dockerconfigjson Secret) with which checkpoint manifests are read to check their namespace; re-read on every call; missing or empty means anonymous. --insecure-registries applies too.")
	return cmd
}

func runPodRestore(ctx context.Context, o *options.Options, p *podRestoreOptions) error {
	ctrl.SetLogger(klog.NewKlogr())
	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	minVersion := uint16(tls.VersionTLS13)
	if p.TLSMinVersion == "1.2" {
		minVersion = tls.VersionTLS12
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme(),
		// The scope controller caches the metadata of every Deployment and
		// StatefulSet of the member; it reads only their annotations.
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsServer(o),
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: p.BindAddress, Port: p.SecurePort, CertDir: p.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = minVersion }},
		}),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	// The handler reads through the API reader: a pod's owner is read
	// when the pod is created, never from a cache that may lag. The scope
	// controller watches only the metadata of Deployments and StatefulSets.
	images := &podrestore.RegistryReader{Keychain: authFileKeychain{p.RegistryAuthFile}, InsecureRegistries: o.InsecureRegistries}
	mgr.GetWebhookServer().Register(podrestore.Path, &admission.Webhook{Handler: &podrestore.Handler{Reader: mgr.GetAPIReader(), Images: images}})
	if p.WebhookConfiguration != "" {
		scope := &podrestore.ScopeReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Configuration: p.WebhookConfiguration}
		if err := scope.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("pod-restore scope controller: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	klog.InfoS("Starting pod-restore webhook", "version", version.Version, "address", fmt.Sprintf("%s:%d", p.BindAddress, p.SecurePort), "path", podrestore.Path)
	return mgr.Start(ctx)
}

// authFileKeychain reads the auth file on every call, so that a rotated
// Secret is used without a restart; no file means anonymous.
type authFileKeychain struct{ path string }

func (k authFileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.path == "" {
		return authn.Anonymous, nil
	}
	if _, err := os.Stat(k.path); os.IsNotExist(err) {
		return authn.Anonymous, nil
	}
	cfg, err := registryauth.LoadAuthFile(k.path)
	if err != nil {
		return nil, err
	}
	return cfg.Keychain().Resolve(r)
}
