package stateshiftctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// LabelRequestedBy marks Checkpoints a person asked for with the plugin;
// the controller's retention leaves them alone.
const LabelRequestedBy = "stateshift.io/requested-by"

type checkpointOptions struct {
	cluster string
	policy  string
	wait    bool
	timeout time.Duration
	output  string
}

func newCheckpointCommand(s *Streams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &checkpointOptions{}
	cmd := &cobra.Command{
		Use:   "checkpoint POD",
		Short: "Checkpoint one pod now, with its namespace's CheckpointPolicy, and wait for the verified image",
		Long: `Creates a Checkpoint of POD in the member cluster that runs it, through
Karmada's cluster proxy (so you need get on clusters/proxy in the Karmada API
and create on checkpoints in the member: checkpointing is as strong as
pods/exec). Repository, credentials, builder and containers come from the
CheckpointPolicy that protects the pod's workload (--policy when several
could). Waits until the image is pushed and verified, then prints it.`,
		Example: `  kubectl stateshift checkpoint db-0 -n shop
  kubectl stateshift checkpoint web-7d9f-abcde -n shop --cluster member2 --policy protect-web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			karmada, ns, err := newClient(flags)
			if err != nil {
				return err
			}
			cfg, err := flags.ToRESTConfig()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			req := &checkpointRequest{karmada: karmada, config: cfg, namespace: ns, pod: args[0], cluster: o.cluster, policy: o.policy, progress: s.ErrOut}
			cp, err := req.run(ctx)
			if err != nil {
				return err
			}
			if done, err := printStructured(s.Out, o.output, cp); done {
				return err
			}
			for _, c := range cp.Status.Containers {
				_, _ = fmt.Fprintf(s.Out, "%s\t%s\t%s\n", c.Name, c.Image, mib(c.ArchiveBytes))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.cluster, "cluster", "", "member cluster running the pod (found through Karmada when empty)")
	cmd.Flags().StringVar(&o.policy, "policy", "", "CheckpointPolicy to take repository and credentials from")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up waiting after this long")
	addOutputFlag(cmd, &o.output)
	return cmd
}

type checkpointRequest struct {
	karmada   client.Client
	config    *rest.Config
	namespace string
	pod       string
	cluster   string
	policy    string
	progress  io.Writer
}

func (r *checkpointRequest) run(ctx context.Context) (*v1alpha1.Checkpoint, error) {
	member, pod, err := r.findPod(ctx)
	if err != nil {
		return nil, err
	}
	policy, err := r.choosePolicy(ctx, member, pod)
	if err != nil {
		return nil, err
	}
	cp := checkpointFor(pod, policy, r.cluster)
	if err := member.Create(ctx, cp); err != nil {
		return nil, fmt.Errorf("create a Checkpoint of pod %s/%s in cluster %s: %w", r.namespace, r.pod, r.cluster, err)
	}
	_, _ = fmt.Fprintf(r.progress, "checkpoint %s/%s created in cluster %s (policy %s)\n", cp.Namespace, cp.Name, r.cluster, policy.Name)
	return followCheckpoint(ctx, member, cp, r.progress)
}

// memberClient reaches one member through Karmada's cluster proxy, with
// the caller's own identity.
func (r *checkpointRequest) memberClient(cluster string) (client.Client, error) {
	cfg := rest.CopyConfig(r.config)
	cfg.Host = strings.TrimSuffix(cfg.Host, "/") + "/apis/cluster.karmada.io/v1alpha1/clusters/" + url.PathEscape(cluster) + "/proxy"
	// The kinds are known: no discovery through the proxy, which Karmada's
	// cluster proxy does not serve as a member's API server does.
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, gvk := range []schema.GroupVersionKind{corev1.SchemeGroupVersion.WithKind("Pod"), appsV1("ReplicaSet"), v1alpha1.GroupVersion.WithKind("Checkpoint")} {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	return client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
}

// findPod looks for the pod in --cluster, or in every Ready member.
func (r *checkpointRequest) findPod(ctx context.Context) (client.Client, *corev1.Pod, error) {
	clusters := []string{r.cluster}
	if r.cluster == "" {
		var err error
		if clusters, err = readyClusters(ctx, r.karmada); err != nil {
			return nil, nil, err
		}
	} else if err := r.karmada.Get(ctx, client.ObjectKey{Name: r.cluster}, &clusterv1alpha1.Cluster{}); err != nil {
		return nil, nil, fmt.Errorf("cluster %s: %w", r.cluster, err)
	}
	var found []string
	var member client.Client
	pod := &corev1.Pod{}
	for _, c := range clusters {
		mc, err := r.memberClient(c)
		if err != nil {
			return nil, nil, err
		}
		p := &corev1.Pod{}
		err = mc.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: r.pod}, p)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("look for pod %s/%s in cluster %s: %w", r.namespace, r.pod, c, err)
		}
		found, member, pod = append(found, c), mc, p
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("pod %s/%s runs in none of the clusters %s", r.namespace, r.pod, strings.Join(clusters, ", "))
	case 1:
		r.cluster = found[0]
	default:
		return nil, nil, fmt.Errorf("pod %s/%s exists in clusters %s: choose one with --cluster", r.namespace, r.pod, strings.Join(found, ", "))
	}
	if pod.Status.Phase != corev1.PodRunning {
		return nil, nil, fmt.Errorf("pod %s/%s in cluster %s is %s: only a running pod can be checkpointed", r.namespace, r.pod, r.cluster, pod.Status.Phase)
	}
	return member, pod, nil
}

func readyClusters(ctx context.Context, c client.Client) ([]string, error) {
	list := &clusterv1alpha1.ClusterList{}
	if err := c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list member clusters (or give --cluster): %w", err)
	}
	var out []string
	for _, cl := range list.Items {
		for _, cond := range cl.Status.Conditions {
			if cond.Type == clusterv1alpha1.ClusterConditionReady && cond.Status == metav1.ConditionTrue {
				out = append(out, cl.Name)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no member cluster is Ready")
	}
	return out, nil
}

// choosePolicy takes --policy, or the one CheckpointPolicy of the namespace
// whose status lists the pod's workload.
func (r *checkpointRequest) choosePolicy(ctx context.Context, member client.Client, pod *corev1.Pod) (*v1alpha1.CheckpointPolicy, error) {
	if r.policy != "" {
		p := &v1alpha1.CheckpointPolicy{}
		if err := r.karmada.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: r.policy}, p); err != nil {
			return nil, fmt.Errorf("CheckpointPolicy %s/%s: %w", r.namespace, r.policy, err)
		}
		return p, nil
	}
	kind, name, err := workloadOf(ctx, member, pod)
	if err != nil {
		return nil, err
	}
	list := &v1alpha1.CheckpointPolicyList{}
	if err := r.karmada.List(ctx, list, client.InNamespace(r.namespace)); err != nil {
		return nil, fmt.Errorf("list CheckpointPolicies: %w", err)
	}
	var matches []*v1alpha1.CheckpointPolicy
	for i := range list.Items {
		for _, w := range list.Items[i].Status.Workloads {
			if w.Kind == kind && w.Name == name {
				matches = append(matches, &list.Items[i])
				break
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("no CheckpointPolicy in namespace %s protects %s %s (the owner of pod %s): protect it first, or name one with --policy", r.namespace, kind, name, r.pod)
	case 1:
		return matches[0], nil
	default:
		return nil, fmt.Errorf("%d CheckpointPolicies protect %s %s: choose one with --policy", len(matches), kind, name)
	}
}

// workloadOf follows the pod's controller reference to its StatefulSet, or
// through its ReplicaSet to its Deployment.
func workloadOf(ctx context.Context, member client.Client, pod *corev1.Pod) (string, string, error) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return "", "", fmt.Errorf("pod %s/%s has no controller: name a policy with --policy", pod.Namespace, pod.Name)
	}
	switch owner.Kind {
	case "StatefulSet":
		return owner.Kind, owner.Name, nil
	case "ReplicaSet":
		rs := &metav1.PartialObjectMetadata{}
		rs.SetGroupVersionKind(appsV1("ReplicaSet"))
		if err := member.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: owner.Name}, rs); err != nil {
			return "", "", fmt.Errorf("ReplicaSet %s of pod %s: %w", owner.Name, pod.Name, err)
		}
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
			return d.Kind, d.Name, nil
		}
	}
	return "", "", fmt.Errorf("pod %s/%s is run by %s %s, not by a StatefulSet or Deployment: name a policy with --policy", pod.Namespace, pod.Name, owner.Kind, owner.Name)
}

// checkpointFor is the Checkpoint a person asks for: the policy's
// repository, credentials, builder and containers, labelled as the
// controller labels its own so that `kubectl get` groups them.
func checkpointFor(pod *corev1.Pod, p *v1alpha1.CheckpointPolicy, cluster string) *v1alpha1.Checkpoint {
	return &v1alpha1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    pod.Namespace,
			GenerateName: pod.Name + "-manual-",
			Labels: map[string]string{
				"stateshift.io/pod": pod.Name, "stateshift.io/cluster": cluster, "stateshift.io/policy": p.Name,
				LabelRequestedBy: "kubectl-stateshift",
			},
		},
		Spec: v1alpha1.CheckpointSpec{
			PodName:              pod.Name,
			Containers:           p.Spec.Containers,
			Repository:           p.Spec.Repository,
			CredentialsSecretRef: p.Spec.CredentialsSecretRef,
			Builder:              p.Spec.Builder,
			Compression:          p.Spec.Compression,
		},
	}
}

// followCheckpoint waits for the agent to finish, printing each phase.
func followCheckpoint(ctx context.Context, c client.Client, cp *v1alpha1.Checkpoint, progress io.Writer) (*v1alpha1.Checkpoint, error) {
	start := time.Now()
	err := follow(ctx, progress, func(ctx context.Context) (string, bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cp), cp); err != nil {
			return "", false, fmt.Errorf("checkpoint %s/%s: %w", cp.Namespace, cp.Name, err)
		}
		if cp.Status.Phase == "" {
			return "waiting for the agent on the pod's node", false, nil
		}
		return fmt.Sprintf("%s: %s", cp.Status.Phase, cp.Status.Message),
			cp.Status.Phase == v1alpha1.CheckpointSucceeded || cp.Status.Phase == v1alpha1.CheckpointFailed, nil
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return cp, fmt.Errorf("checkpoint %s/%s still %s after %s: is the agent running on the pod's node?", cp.Namespace, cp.Name, orDash(string(cp.Status.Phase)), time.Since(start).Round(time.Second))
	case err != nil:
		return cp, err
	case cp.Status.Phase == v1alpha1.CheckpointFailed:
		return cp, fmt.Errorf("checkpoint %s/%s failed: %s", cp.Namespace, cp.Name, cp.Status.Message)
	}
	return cp, nil
}
