package nodesim

import (
	"fmt"
	"net"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
)

// RestoreMode says whether the simulated runtime can restore checkpoints.
type RestoreMode string

const (
	// Restore is CRI-O with container_level_enabled="checkpoint_restore".
	Restore RestoreMode = "Restore"
	// CannotRestore is a runtime that can checkpoint but not restore
	// (CRI-O's default "checkpoint_only"): a checkpoint image is created as an
	// ordinary image and fails with CreateContainerError.
	CannotRestore RestoreMode = "CannotRestore"
)

// MemoryBytesAnnotation overrides Config.StateBytes for the containers of one pod.
const MemoryBytesAnnotation = "nodesim.stateshift.io/memory-bytes"

// Versions the node reports, matching the cluster's.
const (
	KubeletVersion          = "v1.35.3"
	ContainerRuntimeVersion = "cri-o://1.35.0-nodesim"
)

// Config describes one simulated node.
type Config struct {
	// NodeName is the Node object's name.
	NodeName string
	// IP is a loopback address (127.0.0.2, ...): the node's InternalIP, the
	// pods' IP and where the kubelet API listens.
	IP string
	// Port of the kubelet API (10250 when zero).
	Port int
	// KubeConfig reaches the node's cluster with rights to register the node,
	// update pod status, delete pods, create Leases, TokenReviews and
	// SubjectAccessReviews.
	KubeConfig *rest.Config
	// CheckpointDir is the kubelet's checkpoints folder (created 0700).
	CheckpointDir string
	// DataDir holds the node's serving certificate and CA file.
	DataDir string
	// StateBytes is the simulated memory per container (1 MiB when zero).
	StateBytes int64
	// Tick is how often container counters grow (1s when zero).
	Tick time.Duration
	// RestoreMode is Restore when empty.
	RestoreMode RestoreMode
	// Registries say which registries the runtime pulls checkpoint images from.
	Registries RegistryOptions
	// RuntimeRequestTimeout is the kubelet's --runtime-request-timeout (2m
	// when zero): a checkpoint never gets less time than this, whatever
	// ?timeout says, as with the real kubelet.
	RuntimeRequestTimeout time.Duration
	// HeartbeatInterval is how often the node renews its Lease and status (10s when zero).
	HeartbeatInterval time.Duration
	// BackoffInitial and BackoffMax bound the retry delay of containers that
	// failed to start (10s and 5m when zero, the kubelet's values).
	BackoffInitial, BackoffMax time.Duration
	// Capacity is the node's capacity and allocatable (8 cpu, 32Gi memory,
	// 110 pods, 100Gi ephemeral-storage when nil).
	Capacity corev1.ResourceList
	// Labels are added to the Node's well-known labels.
	Labels map[string]string
	// AuthCache is how long the node keeps the API server's answers about
	// a caller (10s, 10s and 5s when zero: what the local environment's
	// real kubelets are configured with, hack/local/realnode.sh).
	AuthCache AuthCacheTTLs
}

// AuthCacheTTLs are the kubelet's webhook cache settings: authentication's
// cacheTTL (accepted and rejected tokens alike) and authorization's
// cacheAuthorizedTTL and cacheUnauthorizedTTL. A negative TTL keeps nothing.
type AuthCacheTTLs struct {
	Token, Allowed, Denied time.Duration
}

// RegistryOptions configure image pulls.
type RegistryOptions struct {
	// Hosts are the registries (host[:port]) the runtime looks images up in.
	// Images of other registries (docker.io/library/busybox) start cold
	// without touching the network: they cannot be checkpoint images here.
	Hosts []string
	// InsecureHosts are pulled from over plain HTTP; they are looked up too.
	// Registries on loopback addresses always use plain HTTP.
	InsecureHosts []string
	// AuthFile is a dockerconfigjson file ({"auths":{...}}) with pull
	// credentials; its hosts are looked up too.
	AuthFile string
	// Keychain, when set, is asked for credentials before AuthFile.
	Keychain authn.Keychain
}

func (c *Config) complete() error {
	if c.NodeName == "" {
		return fmt.Errorf("node name is empty")
	}
	ip := net.ParseIP(c.IP)
	if ip == nil {
		return fmt.Errorf("node IP %q is not an IP address", c.IP)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("node IP %s is not a loopback address: the simulator listens on loopback only", c.IP)
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d out of range", c.Port)
	}
	if c.KubeConfig == nil {
		return fmt.Errorf("no kubeconfig")
	}
	if c.CheckpointDir == "" || c.DataDir == "" {
		return fmt.Errorf("checkpoint dir and data dir must be set")
	}
	if c.StateBytes == 0 {
		c.StateBytes = 1 << 20
	}
	if c.StateBytes < 0 {
		return fmt.Errorf("state bytes %d is negative", c.StateBytes)
	}
	if c.Tick == 0 {
		c.Tick = time.Second
	}
	if c.Tick < 0 {
		return fmt.Errorf("tick %s is negative", c.Tick)
	}
	switch c.RestoreMode {
	case "":
		c.RestoreMode = Restore
	case Restore, CannotRestore:
	default:
		return fmt.Errorf("restore mode %q is neither %s nor %s", c.RestoreMode, Restore, CannotRestore)
	}
	if c.RuntimeRequestTimeout == 0 {
		c.RuntimeRequestTimeout = 2 * time.Minute
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.BackoffInitial == 0 {
		c.BackoffInitial = 10 * time.Second
	}
	if c.AuthCache.Token == 0 {
		c.AuthCache.Token = 10 * time.Second
	}
	if c.AuthCache.Allowed == 0 {
		c.AuthCache.Allowed = 10 * time.Second
	}
	if c.AuthCache.Denied == 0 {
		c.AuthCache.Denied = 5 * time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.Capacity == nil {
		c.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("8"),
			corev1.ResourceMemory:           resource.MustParse("32Gi"),
			corev1.ResourcePods:             resource.MustParse("110"),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}
	}
	return nil
}
