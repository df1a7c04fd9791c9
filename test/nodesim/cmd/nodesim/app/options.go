// Package app holds the nodesim command: its flags (Options) and how it runs.
package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stateshift/stateshift/test/nodesim"
)

// Options are every knob of the nodesim command.
type Options struct {
	Kubeconfig            string
	NodeName              string
	IP                    string
	Port                  int
	CheckpointDir         string
	DataDir               string
	StateBytes            int64
	Tick                  time.Duration
	RestoreMode           string
	CAFileOut             string
	Registries            []string
	InsecureRegistries    []string
	RegistryAuthFile      string
	RuntimeRequestTimeout time.Duration
	HeartbeatInterval     time.Duration
	BackoffInitial        time.Duration
	BackoffMax            time.Duration
	CPU, Memory, Pods     string
	Labels                map[string]string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Port: 10250, StateBytes: 1 << 20, Tick: time.Second, RestoreMode: string(nodesim.Restore),
		RuntimeRequestTimeout: 2 * time.Minute, HeartbeatInterval: 10 * time.Second,
		BackoffInitial: 10 * time.Second, BackoffMax: 5 * time.Minute,
		CPU: "8", Memory: "32Gi", Pods: "110",
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the node's cluster (rights to register nodes, update pod status, create leases, TokenReviews and SubjectAccessReviews)")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of the Node object")
	fs.StringVar(&o.IP, "ip", o.IP, "loopback address of the node (127.0.0.2, 127.0.0.3, ...): InternalIP, pod IP and kubelet API address")
	fs.IntVar(&o.Port, "port", o.Port, "kubelet API port")
	fs.StringVar(&o.CheckpointDir, "checkpoint-dir", o.CheckpointDir, "the kubelet's checkpoints folder (default <data-dir>/checkpoints)")
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "folder for the node's serving certificate (pki/ca.crt)")
	fs.Int64Var(&o.StateBytes, "state-bytes", o.StateBytes, "simulated memory per container, overridable per pod with annotation "+nodesim.MemoryBytesAnnotation)
	fs.DurationVar(&o.Tick, "tick", o.Tick, "how often container counters grow")
	fs.StringVar(&o.RestoreMode, "restore-mode", o.RestoreMode, "Restore, or CannotRestore for a runtime with restore disabled")
	fs.StringVar(&o.CAFileOut, "ca-file-out", o.CAFileOut, "also write the kubelet serving CA (PEM) to this file, for the agent's --kubelet-ca")
	fs.StringSliceVar(&o.Registries, "registry", o.Registries, "registry host[:port] the runtime pulls checkpoint images from (repeatable); images of other registries start cold")
	fs.StringSliceVar(&o.InsecureRegistries, "registry-insecure", o.InsecureRegistries, "registry hosts reached over plain HTTP (loopback registries always are); implies --registry")
	fs.StringVar(&o.RegistryAuthFile, "registry-auth-file", o.RegistryAuthFile, "dockerconfigjson file with pull credentials; its hosts are pulled from too")
	fs.DurationVar(&o.RuntimeRequestTimeout, "runtime-request-timeout", o.RuntimeRequestTimeout, "the kubelet's CRI timeout: the least time a checkpoint gets")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", o.HeartbeatInterval, "how often the node renews its Lease and status")
	fs.DurationVar(&o.BackoffInitial, "backoff-initial", o.BackoffInitial, "first retry delay of a container that failed to start")
	fs.DurationVar(&o.BackoffMax, "backoff-max", o.BackoffMax, "longest retry delay of a container that failed to start")
	fs.StringVar(&o.CPU, "cpu", o.CPU, "node cpu capacity")
	fs.StringVar(&o.Memory, "memory", o.Memory, "node memory capacity")
	fs.StringVar(&o.Pods, "pods", o.Pods, "node pod capacity")
	fs.StringToStringVar(&o.Labels, "node-labels", o.Labels, "extra Node labels, key=value,...")
}

// Config validates the options and turns them into a nodesim.Config.
func (o *Options) Config() (nodesim.Config, error) {
	var errs []string
	if o.Kubeconfig == "" {
		errs = append(errs, "--kubeconfig is required")
	}
	if o.NodeName == "" {
		errs = append(errs, "--node-name is required")
	}
	if o.IP == "" {
		errs = append(errs, "--ip is required")
	}
	if o.DataDir == "" {
		errs = append(errs, "--data-dir is required")
	}
	capacity := corev1.ResourceList{}
	for rn, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: o.CPU, corev1.ResourceMemory: o.Memory, corev1.ResourcePods: o.Pods} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("--%s=%q: %v", rn, v, err))
			continue
		}
		capacity[rn] = q
	}
	capacity[corev1.ResourceEphemeralStorage] = resource.MustParse("100Gi")
	if len(errs) > 0 {
		return nodesim.Config{}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	rc, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nodesim.Config{}, fmt.Errorf("load --kubeconfig: %w", err)
	}
	cdir := o.CheckpointDir
	if cdir == "" {
		cdir = filepath.Join(o.DataDir, "checkpoints")
	}
	if o.RegistryAuthFile != "" {
		if _, err := os.Stat(o.RegistryAuthFile); err != nil {
			return nodesim.Config{}, fmt.Errorf("--registry-auth-file: %w", err)
		}
	}
	return nodesim.Config{
		NodeName: o.NodeName, IP: o.IP, Port: o.Port, KubeConfig: rc,
		CheckpointDir: cdir, DataDir: o.DataDir, StateBytes: o.StateBytes, Tick: o.Tick,
		RestoreMode: nodesim.RestoreMode(o.RestoreMode),
		Registries: nodesim.RegistryOptions{
			Hosts: o.Registries, InsecureHosts: o.InsecureRegistries, AuthFile: o.RegistryAuthFile,
		},
		RuntimeRequestTimeout: o.RuntimeRequestTimeout, HeartbeatInterval: o.HeartbeatInterval,
		BackoffInitial: o.BackoffInitial, BackoffMax: o.BackoffMax,
		Capacity: capacity, Labels: o.Labels,
	}, nil
}
