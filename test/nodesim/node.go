package nodesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Node is one simulated node: kubelet and container runtime.
type Node struct {
	cfg    Config
	client kubernetes.Interface
	auth   *kubeletAuth
	reg    *registryAccess

	cert   tls.Certificate
	caPEM  []byte
	caFile string

	ready   chan struct{}
	running atomic.Bool

	queue     workqueue.TypedRateLimitingInterface[string]
	podLister corelisters.PodLister

	// mu guards pods and everything inside them.
	mu   sync.Mutex
	pods map[string]*podState // by namespace/name

	injectMu    sync.Mutex
	injectErr   error
	injectDelay time.Duration
}

// New checks cfg, creates the node's folders and serving certificate; Run
// starts it.
func New(cfg Config) (*Node, error) {
	if err := cfg.complete(); err != nil {
		return nil, fmt.Errorf("nodesim config: %w", err)
	}
	for _, d := range []string{cfg.CheckpointDir, cfg.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// The kubelet's checkpoint folder is root-only: archives hold memory.
	if err := os.Chmod(cfg.CheckpointDir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", cfg.CheckpointDir, err)
	}
	rc := *cfg.KubeConfig
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	rc.UserAgent = "nodesim/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(&rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	reg, err := newRegistryAccess(cfg.Registries)
	if err != nil {
		return nil, err
	}
	cert, caPEM, caFile, err := servingCert(cfg.DataDir, cfg.NodeName, net.ParseIP(cfg.IP))
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &Node{
		cfg:    cfg,
		client: client,
		auth:   newKubeletAuth(client, cfg.NodeName, cfg.AuthCache, clock.RealClock{}),
		reg:    reg,
		cert:   cert,
		caPEM:  caPEM,
		caFile: caFile,
		ready:  make(chan struct{}),
		pods:   map[string]*podState{},
	}, nil
}

// Name is the Node object's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// Endpoint is the kubelet API's base URL, https://<IP>:<Port>.
func (n *Node) Endpoint() string {
	return "https://" + net.JoinHostPort(n.cfg.IP, strconv.Itoa(n.cfg.Port))
}

// CAFile is the PEM file of the CA that signed the serving certificate.
func (n *Node) CAFile() string { return n.caFile }

// CAPEM is the content of CAFile.
func (n *Node) CAPEM() []byte { return append([]byte(nil), n.caPEM...) }

// CheckpointDir is where archives are written.
func (n *Node) CheckpointDir() string { return n.cfg.CheckpointDir }

// Ready is closed once the node is registered, its pods are listed and its
// kubelet API listens.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// WaitReady waits for Ready or ctx.
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node %s not ready: %w", n.cfg.NodeName, ctx.Err())
	}
}

// InjectCheckpointError makes every checkpoint fail in the runtime with err
// (nil restores normal behaviour), for tests of the 500 path.
func (n *Node) InjectCheckpointError(err error) {
	n.injectMu.Lock()
	defer n.injectMu.Unlock()
	n.injectErr = err
}

// InjectCheckpointDelay makes every dump take at least d longer, for tests
// of timeouts (0 restores normal behaviour).
func (n *Node) InjectCheckpointDelay(d time.Duration) {
	n.injectMu.Lock()
	defer n.injectMu.Unlock()
	n.injectDelay = d
}

// Run plays the node until ctx ends. It can be called once.
func (n *Node) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return fmt.Errorf("node %s is already running", n.cfg.NodeName)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := klog.FromContext(ctx).WithValues("node", n.cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)

	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.IP, strconv.Itoa(n.cfg.Port)))
	if err != nil {
		return fmt.Errorf("kubelet API listen: %w", err)
	}
	defer ln.Close()

	if err := n.register(ctx); err != nil {
		return err
	}

	n.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	lw := cache.NewListWatchFromClient(n.client.CoreV1().RESTClient(), "pods", corev1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", n.cfg.NodeName))
	informer := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			n.queue.Add(key)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	n.podLister = corelisters.NewPodLister(informer.GetIndexer())

	var wg sync.WaitGroup
	defer wg.Wait()
	defer n.queue.ShutDown()
	defer cancel()
	wg.Go(func() { informer.Run(ctx.Done()) })
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("pods of node %s: cache did not sync: %w", n.cfg.NodeName, ctx.Err())
	}
	for range 2 {
		wg.Go(func() {
			for n.processNext(ctx) {
			}
		})
	}
	wg.Go(func() { n.heartbeat(ctx) })
	wg.Go(func() { n.tick(ctx) })

	srv := &http.Server{
		Handler:           n,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{n.cert}, MinVersion: tls.VersionTLS12},
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	close(n.ready)
	logger.Info("Node simulator running", "endpoint", n.Endpoint(), "restoreMode", n.cfg.RestoreMode)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("kubelet API: %w", err)
		}
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(shutdownCtx)
	n.mu.Lock()
	for _, p := range n.pods {
		p.cancel()
	}
	n.mu.Unlock()
	return runErr
}
