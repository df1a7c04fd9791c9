package stateshiftctl

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/testenv"
)

// karmadaFront stands where karmada-apiserver stands for the plugin: it
// forwards /apis/cluster.karmada.io/v1alpha1/clusters/<c>/proxy/... to the
// API server of member c, as Karmada's cluster proxy does, and everything
// else to the control plane's API server. It returns a kubeconfig for it.
func karmadaFront(t *testing.T, control *rest.Config, members map[string]*rest.Config) string {
	t.Helper()
	proxyTo := func(cfg *rest.Config, strip string) http.Handler {
		target, err := url.Parse(cfg.Host)
		must(t, err)
		transport, err := rest.TransportFor(cfg)
		must(t, err)
		p := httputil.NewSingleHostReverseProxy(target)
		p.Transport = transport
		return http.StripPrefix(strip, p)
	}
	control_ := proxyTo(control, "")
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "/apis/cluster.karmada.io/v1alpha1/clusters/"
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
			if cluster, _, ok := strings.Cut(rest, "/proxy/"); ok {
				if cfg, ok := members[cluster]; ok {
					proxyTo(cfg, prefix+cluster+"/proxy").ServeHTTP(w, r)
					return
				}
				http.Error(w, "no such cluster", http.StatusNotFound)
				return
			}
		}
		control_.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	kc := clientcmdapi.NewConfig()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})
	kc.Clusters["karmada"] = &clientcmdapi.Cluster{Server: front.URL, CertificateAuthorityData: ca}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["karmada"] = &clientcmdapi.Context{Cluster: "karmada", AuthInfo: "user"}
	kc.CurrentContext = "karmada"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// playAgent does what the member's agent does with a Checkpoint: here it
// reports success with an image, or failure for a pod named "broken-*".
func playAgent(ctx context.Context, t *testing.T, member client.Client, ns string) {
	go func() {
		for ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			list := &v1alpha1.CheckpointList{}
			if err := member.List(ctx, list, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range list.Items {
				cp := &list.Items[i]
				if cp.Status.Phase != "" {
					continue
				}
				cp.Status.Phase, cp.Status.Message = v1alpha1.CheckpointSucceeded, "pushed and verified"
				cp.Status.Containers = []v1alpha1.ContainerCheckpoint{{Name: "db", Image: cp.Spec.Repository + "@sha256:" + strings.Repeat("ab", 32), ArchiveBytes: 3 << 20}}
				if strings.HasPrefix(cp.Spec.PodName, "broken") {
					cp.Status.Phase, cp.Status.Message, cp.Status.Containers = v1alpha1.CheckpointFailed, "KubeletRuntimeError: CRIU failed", nil
				}
				_ = member.Status().Update(ctx, cp)
			}
		}
	}()
}

func TestCheckpointFindsThePodAndWaitsForTheImage(t *testing.T) {
	control := testenv.Start(t, testenv.Options{ExtraCRDDirs: []string{filepath.Join(testenv.Root(), "test", "crds", "karmada-cluster")}})
	member := testenv.Start(t)
	ns := control.Namespace(t, "shop")
	member.Namespace(t, ns)
	ctx := t.Context()
	// member2 is Ready but is the control plane's API server: the pod is
	// not there, so the plugin must pick member1.
	kubeconfig := karmadaFront(t, control.Config, map[string]*rest.Config{"member1": member.Config, "member2": control.Config})
	clusters, err := client.New(control.Config, client.Options{Scheme: scheme})
	must(t, err)
	for _, name := range []string{"member1", "member2"} {
		c := &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
		must(t, clusters.Create(ctx, c))
		c.Status.Conditions = []metav1.Condition{{Type: clusterv1alpha1.ClusterConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", LastTransitionTime: metav1.Now()}}
		must(t, clusters.Status().Update(ctx, c))
	}
	policy := &v1alpha1.CheckpointPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "protect-db"},
		Spec: v1alpha1.CheckpointPolicySpec{
			ResourceSelectors:    []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}},
			Repository:           "registry.example/shop/db",
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "shop-push"},
			Builder:              v1alpha1.BuilderNative,
			Containers:           []string{"db"},
			Schedule:             v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: time.Minute}},
		},
	}
	must(t, control.Client.Create(ctx, policy))
	policy.Status.Workloads = []v1alpha1.ProtectedWorkload{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Clusters: []string{"member1"}}}
	must(t, control.Client.Status().Update(ctx, policy))
	runningPod := func(name, owner string) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: owner, UID: "u-1", Controller: ptr.To(true),
			}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "redis:7.4"}}},
		}
		must(t, member.Client.Create(ctx, p))
		p.Status.Phase = corev1.PodRunning
		must(t, member.Client.Status().Update(ctx, p))
	}
	runningPod("db-0", "db")
	runningPod("broken-0", "db")
	runningPod("cache-0", "cache")
	must(t, member.Client.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pending-0"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "redis:7.4"}}},
	}))
	agentCtx, stop := context.WithCancel(ctx)
	defer stop()
	playAgent(agentCtx, t, member.Client, ns)

	out, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "checkpoint", "db-0", "--timeout", "30s")
	if err != nil {
		t.Fatalf("checkpoint db-0: %v", err)
	}
	if !strings.Contains(out, "db\tregistry.example/shop/db@sha256:abab") || !strings.Contains(out, "3.0 MiB") {
		t.Errorf("output %q", out)
	}
	list := &v1alpha1.CheckpointList{}
	must(t, member.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"stateshift.io/pod": "db-0"}))
	if len(list.Items) != 1 {
		t.Fatalf("%d Checkpoints of db-0 in member1, want 1", len(list.Items))
	}
	cp := list.Items[0]
	if cp.Spec.Repository != policy.Spec.Repository || cp.Spec.CredentialsSecretRef.Name != "shop-push" || cp.Spec.Builder != v1alpha1.BuilderNative ||
		cp.Labels["stateshift.io/cluster"] != "member1" || cp.Labels[LabelRequestedBy] != "kubectl-stateshift" || !strings.HasPrefix(cp.Name, "db-0-manual-") {
		t.Errorf("checkpoint %+v %+v", cp.ObjectMeta, cp.Spec)
	}
	karmadaSide := &v1alpha1.CheckpointList{}
	must(t, control.Client.List(ctx, karmadaSide, client.InNamespace(ns)))
	if len(karmadaSide.Items) != 0 {
		t.Errorf("the Checkpoint was created in the Karmada API too: %d", len(karmadaSide.Items))
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"broken-0"}, "failed: KubeletRuntimeError: CRIU failed"},
		{[]string{"nope-0"}, "runs in none of the clusters member1, member2"},
		{[]string{"pending-0", "--cluster", "member1"}, "only a running pod can be checkpointed"},
		{[]string{"cache-0"}, "no CheckpointPolicy in namespace shop protects StatefulSet cache"},
		{[]string{"db-0", "--cluster", "member3"}, "cluster member3: clusters.cluster.karmada.io \"member3\" not found"},
		{[]string{"db-0", "--policy", "nope"}, "CheckpointPolicy shop/nope"},
	} {
		_, err := run(t, nil, append([]string{"--kubeconfig", kubeconfig, "-n", ns, "checkpoint", "--timeout", "20s"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkpoint %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func init() {
	// Keep the plugin's discovery cache out of the machine's home.
	_ = os.Setenv("KUBECACHEDIR", filepath.Join(os.TempDir(), "stateshiftctl-test-cache"))
}
