// Package app wires the interpreter webhook: flags, a controller-runtime
// manager serving the interpreter over HTTPS (certificate reloaded on
// rotation), health probes and metrics, and room for the controllers that
// later releases add to the same manager.
package app

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app/options"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/interpreter"
	"github.com/stateshift/stateshift/pkg/version"
)

// NewInterpreterWebhookCommand is the interpreter-webhook command.
func NewInterpreterWebhookCommand(ctx context.Context) *cobra.Command {
	o := options.New()
	cmd := &cobra.Command{
		Use:   "interpreter-webhook",
		Short: "Serves stateshift's Karmada resource interpreter",
		Long: `interpreter-webhook answers Karmada's resource interpreter requests for apps/v1
StatefulSet and Deployment (Karmada's native behaviour plus the migration state and the
retention of restored workloads) and for stateshift.io Checkpoint (status, aggregation,
health). Karmada reaches it through a ResourceInterpreterWebhookConfiguration.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return Run(ctx, o, Controllers(o)...)
		},
	}
	o.AddFlags(cmd.Flags())
	logs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(logs)
	cmd.Flags().AddGoFlagSet(logs)
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	})
	return cmd
}

// Scheme knows the kinds the manager's clients read.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// webhookOnlyConfig stands in when no API server is configured: the
// manager needs a rest.Config, yet with no controller, no leader election
// and no cache user nothing dials it. Run refuses controllers then.
func webhookOnlyConfig() *rest.Config {
	return &rest.Config{Host: "https://127.0.0.1:1"}
}

// NewManager builds the manager with the interpreter registered at
// interpreter.Path and the health checks; setups (the control-plane
// controllers of later releases) are added to it.
func NewManager(o *options.Options, setups ...func(manager.Manager) error) (manager.Manager, error) {
	cfg := o.RestConfig
	if cfg == nil {
		if len(setups) > 0 || o.LeaderElect {
			return nil, fmt.Errorf("controllers and leader election need an API server: give --kubeconfig")
		}
		klog.InfoS("No API server configured: serving the interpreter webhook alone")
		cfg = webhookOnlyConfig()
	}
	minVersion := o.TLSMinVersionID()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Logger: klog.Background(),
		Scheme: Scheme(),
		// Nothing reads who wrote which field; at 1,000 workloads the
		// bindings', templates' and Checkpoints' managedFields were a good
		// part of the cache.
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		PprofBindAddress:        o.PprofBindAddress,
		LeaderElection:          o.LeaderElect,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaderElectionID:        o.LeaderElectionID,
		GracefulShutdownTimeout: &o.ShutdownTimeout,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:     o.BindAddress,
			Port:     o.SecurePort,
			CertDir:  o.CertDir,
			CertName: o.CertName,
			KeyName:  o.KeyName,
			TLSOpts:  []func(*tls.Config){func(c *tls.Config) { c.MinVersion = minVersion }},
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	mgr.GetWebhookServer().Register(interpreter.Path, interpreter.NewHandler())
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the HTTPS server listens with its certificate loaded.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	for _, setup := range setups {
		if err := setup(mgr); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// Run serves until ctx ends, then stops gracefully.
func Run(ctx context.Context, o *options.Options, setups ...func(manager.Manager) error) error {
	ctrl.SetLogger(klog.Background())
	mgr, err := NewManager(o, setups...)
	if err != nil {
		return err
	}
	klog.InfoS("Starting interpreter webhook", "version", version.Version, "address", fmt.Sprintf("%s:%d", o.BindAddress, o.SecurePort), "path", interpreter.Path)
	return mgr.Start(ctx)
}
