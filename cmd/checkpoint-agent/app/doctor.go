package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent/doctor"
	"github.com/stateshift/stateshift/pkg/agent/kubelet"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
)

func newDoctorCommand(ctx context.Context, o *options.Options) *cobra.Command {
	var repository, secret string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check buildah, storage, the checkpoint folder, the kubelet, the registry and the pod-restore webhook, one line each",
		Long: `doctor runs, with the agent's own flags, the checks of stateshift's troubleshooting
guide and prints one line per check: OK, or what is wrong and how to fix it.
Run it inside the agent's pod:
  kubectl -n stateshift-system exec ds/stateshift-checkpoint-agent -- checkpoint-agent doctor --repository=REPO [--credentials-secret=NAME]`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := doctor.Inputs{Buildah: o.BuildahPath, BuildahRoot: o.BuildahRoot, BuildahRunRoot: o.BuildahRunRoot,
				StorageDriver: o.BuildahDriver, CheckpointDir: o.CheckpointDir, Repository: repository}
			var problems []string
			c, err := clusterClient(o)
			if err != nil {
				problems = append(problems, fmt.Sprintf("cluster client: %v", err))
			}
			if kc, err := kubelet.New(kubelet.Config{TokenFile: o.TokenFile, CAFile: o.KubeletCA,
				InsecureSkipTLSVerify: o.KubeletInsecureSkipTLSVerify, ServerName: o.KubeletServerName}); err != nil {
				problems = append(problems, fmt.Sprintf("kubelet client: %v", err))
			} else {
				in.Kubelet = kc
			}
			if c != nil {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				node := &corev1.Node{}
				if err := c.Get(cctx, types.NamespacedName{Name: o.NodeName}, node); err != nil {
					problems = append(problems, fmt.Sprintf("node %q: %v", o.NodeName, err))
				} else {
					in.KubeletPort = int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
					for _, a := range node.Status.Addresses {
						if a.Type == corev1.NodeInternalIP {
							in.KubeletHost = a.Address
						}
					}
				}
				in.PodRestore = &admissionregistrationv1.MutatingWebhookConfiguration{}
				if err := c.Get(cctx, types.NamespacedName{Name: "stateshift-pod-restore"}, in.PodRestore); err != nil {
					in.PodRestore, in.PodRestoreErr = nil, err
				}
				if secret != "" {
					s := &corev1.Secret{}
					if err := c.Get(cctx, types.NamespacedName{Namespace: o.Namespace, Name: secret}, s); err != nil {
						problems = append(problems, fmt.Sprintf("credentials Secret %s/%s: %v", o.Namespace, secret, err))
					} else if cfg, err := registryauth.Parse(s); err != nil {
						problems = append(problems, fmt.Sprintf("credentials Secret %s/%s: %v", o.Namespace, secret, err))
					} else {
						in.Registry = cfg
					}
				}
			}
			in.Insecure = contains(o.InsecureRegistries, registryHost(repository))
			results := doctor.Run(ctx, in)
			for _, p := range problems {
				results = append(results, doctor.Result{Name: "setup", Detail: p, Fix: "check --kubeconfig/in-cluster access, --node-name, --namespace and the agent's RBAC"})
			}
			if !doctor.Print(cmd.OutOrStdout(), results) {
				os.Exit(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repository, "repository", "", "Registry repository to check push access to.")
	cmd.Flags().StringVar(&secret, "credentials-secret", "", "dockerconfigjson Secret (in the agent's namespace) to check against the registry.")
	return cmd
}

func clusterClient(o *options.Options) (client.Client, error) {
	cfg, err := restConfig(o)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme()})
}

func registryHost(repo string) string {
	for i, ch := range repo {
		if ch == '/' {
			return repo[:i]
		}
	}
	return repo
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
