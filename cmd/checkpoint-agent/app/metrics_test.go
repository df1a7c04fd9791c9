package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/test/testenv"
)

const agentNS = "stateshift-system"

func applyFile(t *testing.T, c client.Client, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			if err := c.Create(t.Context(), u); err != nil {
				t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
	}
}

func token(t *testing.T, cs kubernetes.Interface, sa string) string {
	t.Helper()
	if _, err := cs.CoreV1().ServiceAccounts(agentNS).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(agentNS).CreateToken(t.Context(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSecureMetrics: with --metrics-secure the agent's /metrics answers
// only callers the API server authenticates and allows get /metrics,
// checked with the RBAC the chart ships (artifacts/agent/rbac.yaml): the
// agent's own ServiceAccount makes the reviews.
func TestSecureMetrics(t *testing.T) {
	env := testenv.Start(t)
	env.Namespace(t, agentNS)
	applyFile(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "agent", "rbac.yaml"))
	cs := kubernetes.NewForConfigOrDie(env.Config)
	scraper, nobody := token(t, cs, "scraper"), token(t, cs, "nobody")
	if err := env.Client.Create(t.Context(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "stateshift-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: agentNS}}}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + agentNS + ":stateshift-checkpoint-agent",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNS, "system:authenticated"}}
	o := options.New()
	o.MetricsBindAddress, o.MetricsSecure = fmt.Sprintf("127.0.0.1:%d", freePort(t)), true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme(), Metrics: metricsServer(o), HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	url := "https://" + o.MetricsBindAddress + "/metrics"
	get := func(bearer string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for code, _ := get(""); code == 0; code, _ = get("") {
		if time.Now().After(deadline) {
			t.Fatal("the metrics server did not start")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{{"no token", "", 401}, {"a forged token", "not-a-token", 401}, {"an identity without the role", nobody, 403}, {"the scraper", scraper, 200}} {
		code, body := get(tc.token)
		if code != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.who, code, tc.want, body)
		}
		if code == 200 && !strings.Contains(body, `stateshift_build_info{binary="checkpoint-agent"`) {
			t.Errorf("the scraper's answer has no stateshift_build_info: %.500s", body)
		}
	}
	if code, _ := get(scraper); code != 200 { // remembered, not reviewed again
		t.Errorf("second scrape: %d", code)
	}
}
