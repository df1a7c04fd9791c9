package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/stateshift/stateshift/test/nodesim"
	"github.com/stateshift/stateshift/test/testenv"
)

func TestFlagsAreValidated(t *testing.T) {
	var stderr bytes.Buffer
	if rc := Main(t.Context(), []string{"--ip", "127.0.0.2"}, &stderr); rc != 1 ||
		!strings.Contains(stderr.String(), "--kubeconfig is required") || !strings.Contains(stderr.String(), "--node-name is required") {
		t.Errorf("rc %d, stderr %q", rc, stderr.String())
	}
	stderr.Reset()
	if rc := Main(t.Context(), []string{"--no-such-flag"}, &stderr); rc != 2 {
		t.Errorf("unknown flag: rc %d", rc)
	}
	o := NewOptions()
	o.Kubeconfig, o.NodeName, o.IP, o.DataDir, o.CPU = "x", "n", "127.0.0.2", t.TempDir(), "many"
	if _, err := o.Config(); err == nil || !strings.Contains(err.Error(), "--cpu") {
		t.Errorf("bad --cpu accepted: %v", err)
	}
}

// TestMainRunsANode runs the command against a real API server until the node
// is Ready and its CA is written, then stops it with the context.
func TestMainRunsANode(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	c := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	caOut := filepath.Join(dir, "kubelet-ca.crt")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{
			"--kubeconfig", kubeconfig, "--node-name", "cli-node", "--ip", "127.0.0.4", "--port", strconv.Itoa(freePort(t)),
			"--data-dir", filepath.Join(dir, "data"), "--tick", "100ms", "--restore-mode", "CannotRestore",
			"--ca-file-out", caOut, "--heartbeat-interval", "1s", "--node-labels", "zone=a",
		}, &stderr)
	}()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		node, err := cs.CoreV1().Nodes().Get(t.Context(), "cli-node", metav1.GetOptions{})
		if err == nil && node.Labels["zone"] == "a" && len(node.Status.Conditions) > 0 &&
			node.Status.Conditions[len(node.Status.Conditions)-1].Type == corev1.NodeReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not registered: %v; stderr %s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pem, err := os.ReadFile(caOut)
	if err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Fatalf("--ca-file-out: %v", err)
	}
	if _, err := nodesim.FetchState(t.Context(), "https://127.0.0.4:"+portOf(t, cs), pem, "", "", ""); err != nil {
		t.Errorf("state endpoint: %v", err)
	}
	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Errorf("exit code %d; stderr %s", rc, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("nodesim did not stop")
	}
}

func portOf(t *testing.T, cs kubernetes.Interface) string {
	node, err := cs.CoreV1().Nodes().Get(t.Context(), "cli-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))
}
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
