package stateshiftctl

import (
	"fmt"
	"strings"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// scheme knows the kinds the plugin reads and writes.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // a programming error: the built-in scheme always registers
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := clusterv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

func appsV1(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
}

// newClient is an uncached client for the Karmada API named by kubectl's
// flags, and the namespace those flags select.
func newClient(flags *genericclioptions.ConfigFlags) (client.Client, string, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("namespace: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return c, ns, nil
}

// parseWorkload reads KIND/NAME as kubectl does (statefulset/db, sts/db,
// deployment/web, deploy/web).
func parseWorkload(arg string) (v1alpha1.WorkloadReference, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return v1alpha1.WorkloadReference{}, fmt.Errorf("workload %q: give KIND/NAME, e.g. statefulset/db or deployment/web", arg)
	}
	ref := v1alpha1.WorkloadReference{APIVersion: "apps/v1", Name: name}
	switch strings.ToLower(kind) {
	case "statefulset", "statefulsets", "sts", "statefulset.apps":
		ref.Kind = "StatefulSet"
	case "deployment", "deployments", "deploy", "deployment.apps":
		ref.Kind = "Deployment"
	default:
		return v1alpha1.WorkloadReference{}, fmt.Errorf("workload %q: stateshift protects StatefulSets and Deployments, not %q", arg, kind)
	}
	return ref, nil
}
