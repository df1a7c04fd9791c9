package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
)

// The member API client must carry the agent's own rate limits: left at
// QPS 0, client-go throttles it to 5 requests a second, which held a
// member to under two checkpoints a second in the scale benchmark.
func TestRestConfigRateLimits(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: a, user: {token: x}}]
contexts: [{name: m, context: {cluster: m, user: a}}]
current-context: m
`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := options.New()
	if o.KubeAPIQPS <= 5 {
		t.Fatalf("default --kube-api-qps %v: not above client-go's 5", o.KubeAPIQPS)
	}
	o.Kubeconfig, o.KubeAPIQPS, o.KubeAPIBurst = kubeconfig, 150, 300
	cfg, err := restConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS != 150 || cfg.Burst != 300 {
		t.Fatalf("client QPS %v burst %d, want 150 and 300 from the flags", cfg.QPS, cfg.Burst)
	}
	o.KubeAPIQPS = 0
	o.NodeName, o.Namespace = "n", "ns"
	if err := o.Validate(); err == nil {
		t.Fatal("--kube-api-qps 0 accepted")
	}
}
