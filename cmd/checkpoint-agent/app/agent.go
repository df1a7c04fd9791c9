// Package app wires the checkpoint agent: flags, the controller-runtime
// manager with a pod cache limited to this node, the reconciler, and the
// doctor subcommand.
package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent"
	"github.com/stateshift/stateshift/pkg/agent/archive"
	imagebuilder "github.com/stateshift/stateshift/pkg/agent/builder"
	"github.com/stateshift/stateshift/pkg/agent/kubelet"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/version"
)

// NewAgentCommand is the checkpoint-agent command with its doctor and
// pod-restore-webhook subcommands.
func NewAgentCommand(ctx context.Context) *cobra.Command {
	o := options.New()
	cmd := &cobra.Command{
		Use:   "checkpoint-agent",
		Short: "Turns kubelet checkpoints of this node's pods into OCI checkpoint images",
		Long: `checkpoint-agent runs on every node of a member cluster (a DaemonSet). It executes
the stateshift.io Checkpoint objects whose pod runs on its node: it asks the kubelet
for a checkpoint of each container, builds an OCI checkpoint image (buildah or
native), pushes it, reads it back by digest and deletes the archive.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return Run(ctx, o)
		},
	}
	o.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newDoctorCommand(ctx, o))
	cmd.AddCommand(newPodRestoreCommand(ctx, o))
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	})
	return cmd
}

// restConfig is the member API server's client configuration with the
// agent's own rate limits: a config left at QPS 0 gets client-go's default
// of 5 requests a second, which caps a node at about one checkpoint a
// second whatever --max-concurrent says.
func restConfig(o *options.Options) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	return cfg, nil
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// Builders returns the image builders the options enable.
func Builders(o *options.Options) map[v1alpha1.Builder]imagebuilder.ImageBuilder {
	out := map[v1alpha1.Builder]imagebuilder.ImageBuilder{}
	for _, b := range o.Builders {
		switch v1alpha1.Builder(b) {
		case v1alpha1.BuilderBuildah:
			out[v1alpha1.BuilderBuildah] = &imagebuilder.Buildah{Binary: o.BuildahPath, Root: o.BuildahRoot,
				RunRoot: o.BuildahRunRoot, StorageDriver: o.BuildahDriver, TmpDir: buildahTmpDir(o),
				Home: filepath.Join(o.WorkDir, agent.BuildahHomeDir)}
		case v1alpha1.BuilderNative:
			out[v1alpha1.BuilderNative] = imagebuilder.NewNative()
		}
	}
	return out
}

func buildahTmpDir(o *options.Options) string {
	if o.BuildahTmpDir != "" {
		return o.BuildahTmpDir
	}
	return filepath.Join(o.WorkDir, agent.BuildahTmpDir)
}

// Run starts the agent and blocks until ctx ends.
func Run(ctx context.Context, o *options.Options) error {
	ctrl.SetLogger(klog.NewKlogr())
	log := klog.FromContext(ctx)
	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	journal := &archive.Journal{Dir: o.JournalDir}
	if journal.Dir == "" {
		journal.Dir = filepath.Join(o.WorkDir, "journal")
	}
	for _, d := range []string{o.WorkDir, buildahTmpDir(o), filepath.Join(o.WorkDir, agent.BuildahHomeDir), journal.Dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("work folder: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("work folder: %w", err)
		}
	}
	builders := Builders(o)
	// Before any work: what a killed predecessor left goes first.
	sweep := agent.Sweep{Journal: journal, CheckpointDir: o.CheckpointDir, WorkDir: o.WorkDir}
	if b, ok := builders[v1alpha1.BuilderBuildah].(*imagebuilder.Buildah); ok {
		sweep.Buildah = b
	}
	if err := sweep.Run(ctx); err != nil {
		log.Error(err, "Some leftovers of an earlier run could not be removed; they stay on the node")
	}
	kc, err := kubelet.New(kubelet.Config{TokenFile: o.TokenFile, CAFile: o.KubeletCA,
		InsecureSkipTLSVerify: o.KubeletInsecureSkipTLSVerify, ServerName: o.KubeletServerName,
		CallTimeout: o.KubeletTimeout + 30*time.Second})
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme(),
		Metrics:                metricsServer(o),
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only this node's pods: the agent never lists the cluster's pods.
			&corev1.Pod{}: {Field: fields.OneTermEqualSelector("spec.nodeName", o.NodeName)},
		}},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	r := &agent.Reconciler{
		Client:             mgr.GetClient(),
		Reader:             mgr.GetAPIReader(),
		Recorder:           mgr.GetEventRecorder("checkpoint-agent"),
		NodeName:           o.NodeName,
		Namespace:          o.Namespace,
		Kubelet:            kc,
		CheckpointDir:      o.CheckpointDir,
		WorkDir:            o.WorkDir,
		Journal:            journal,
		Builders:           builders,
		InsecureRegistries: o.InsecureRegistries,
		MaxAttempts:        o.MaxAttempts,
		BackoffBase:        o.BackoffBase,
		BackoffMax:         o.BackoffMax,
		PodWait:            o.PodWait,
		MaxConcurrent:      o.MaxConcurrent,
		KubeletTimeout:     o.KubeletTimeout,
		PushTimeout:        o.PushTimeout,
		VerifyTimeout:      o.VerifyTimeout,

		RequireSecretNamespaces: o.RequireSecretNamespaces,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	// A restored container restarted in place restores its checkpoint
	// again: say so on the pod (stateshift cannot prevent it).
	rw := &agent.RestartWatcher{Client: mgr.GetClient(), Recorder: r.Recorder, NodeName: o.NodeName}
	if err := rw.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the caches are synced: before that the agent would not see
	// its Checkpoints.
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	log.Info("starting checkpoint agent", "version", version.Version, "node", o.NodeName, "builders", o.Builders)
	return mgr.Start(ctx)
}
