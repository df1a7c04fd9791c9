package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app/options"
	"github.com/stateshift/stateshift/pkg/interpreter"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/selfsigned"
	"github.com/stateshift/stateshift/test/testenv"
)

type server struct {
	ca      *selfsigned.CA
	opts    *options.Options
	certDir string
	base    string // https://127.0.0.1:port
	health  string // http://127.0.0.1:port
	metrics string
	client  *http.Client
	done    chan error
	cancel  context.CancelFunc
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the real app (Run) on loopback with a fresh certificate and
// waits until /readyz answers.
func start(t *testing.T, edit func(*options.Options), setups ...func(manager.Manager) error) *server {
	t.Helper()
	ca, err := selfsigned.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := ca.WriteServing(dir, "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	o := options.New()
	o.BindAddress = "127.0.0.1"
	o.SecurePort = freePort(t)
	o.CertDir = dir
	o.HealthProbeBindAddress = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	o.MetricsBindAddress = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	o.ShutdownTimeout = 5 * time.Second
	if edit != nil {
		edit(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{
		ca: ca, opts: o, certDir: dir, cancel: cancel, done: make(chan error, 1),
		base:    fmt.Sprintf("https://127.0.0.1:%d", o.SecurePort),
		health:  "http://" + o.HealthProbeBindAddress,
		metrics: "http://" + o.MetricsBindAddress,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		}},
	}
	go func() { s.done <- Run(ctx, o, setups...) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("Run returned before ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("Run did not stop")
	}
}

func (s *server) interpret(t *testing.T, req configv1alpha1.ResourceInterpreterRequest) configv1alpha1.ResourceInterpreterResponse {
	t.Helper()
	b, _ := json.Marshal(configv1alpha1.ResourceInterpreterContext{
		TypeMeta: metav1.TypeMeta{APIVersion: "config.karmada.io/v1alpha1", Kind: "ResourceInterpreterContext"},
		Request:  &req,
	})
	resp, err := s.client.Post(s.base+interpreter.Path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rc configv1alpha1.ResourceInterpreterContext
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil || rc.Response == nil {
		t.Fatalf("decode response: %v", err)
	}
	return *rc.Response
}

const statefulSetJSON = `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db","namespace":"shop","generation":2,
"annotations":{"resourcetemplate.karmada.io/generation":"2","stateshift.io/latest-checkpoint":"db-0-ckpt-3"}},
"spec":{"replicas":3,"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"app","image":"registry.example.com/db:1",
"resources":{"requests":{"cpu":"250m","memory":"512Mi"}}}]}}},
"status":{"replicas":3,"readyReplicas":3,"currentReplicas":3,"updatedReplicas":3,"availableReplicas":3,"observedGeneration":2}}`

func req(op configv1alpha1.InterpreterOperation, obj string) configv1alpha1.ResourceInterpreterRequest {
	return configv1alpha1.ResourceInterpreterRequest{
		UID: types.UID("uid-" + string(op)), Operation: op, Name: "db", Namespace: "shop",
		Kind:   metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		Object: runtime.RawExtension{Raw: []byte(obj)},
	}
}

func apply(t *testing.T, doc []byte, resp configv1alpha1.ResourceInterpreterResponse) map[string]interface{} {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != configv1alpha1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply %s: %v", resp.Patch, err)
	}
	m := map[string]interface{}{}
	_ = json.Unmarshal(out, &m)
	return m
}

// TestServeOverHTTPS runs the real app without any API server and drives
// every operation over TLS.
func TestServeOverHTTPS(t *testing.T) {
	s := start(t, nil)

	r := req(configv1alpha1.InterpreterOperationInterpretReplica, statefulSetJSON)
	resp := s.interpret(t, r)
	if !resp.Successful || resp.UID != r.UID || resp.Replicas == nil || *resp.Replicas != 3 ||
		resp.ReplicaRequirements.ResourceRequest.Cpu().String() != "250m" {
		t.Fatalf("InterpretReplica: %+v", resp)
	}

	r = req(configv1alpha1.InterpreterOperationReviseReplica, statefulSetJSON)
	five := int32(5)
	r.DesiredReplicas = &five
	resp = s.interpret(t, r)
	if got := apply(t, r.Object.Raw, resp); !resp.Successful || resp.UID != r.UID || got["spec"].(map[string]interface{})["replicas"] != float64(5) {
		t.Fatalf("ReviseReplica: %+v -> %v", resp, got["spec"])
	}

	r = req(configv1alpha1.InterpreterOperationInterpretStatus, statefulSetJSON)
	resp = s.interpret(t, r)
	var status map[string]interface{}
	_ = json.Unmarshal(resp.RawStatus.Raw, &status)
	// Only a restore is reflected (restoredFrom); this copy was not
	// restored, and its latest-checkpoint annotation is nobody's status.
	if _, reflected := status[restore.StatusField]; !resp.Successful || status["readyReplicas"] != float64(3) || reflected {
		t.Fatalf("InterpretStatus: %s", resp.RawStatus.Raw)
	}

	r = req(configv1alpha1.InterpreterOperationInterpretHealth, statefulSetJSON)
	if resp = s.interpret(t, r); !resp.Successful || resp.Healthy == nil || !*resp.Healthy {
		t.Fatalf("InterpretHealth: %+v", resp)
	}

	r = req(configv1alpha1.InterpreterOperationInterpretDependency, statefulSetJSON)
	if resp = s.interpret(t, r); !resp.Successful || resp.UID != r.UID {
		t.Fatalf("InterpretDependency: %+v", resp)
	}

	// Retain of a restored member whose plan was withdrawn keeps the
	// checkpoint image and records the restore as completed.
	template := &unstructured.Unstructured{}
	_ = template.UnmarshalJSON([]byte(statefulSetJSON))
	unstructured.RemoveNestedField(template.Object, "status")
	plan := restore.Plan{Checkpoint: "db-0-ckpt-3", Containers: map[string]string{"app": "registry.example.com/ckpt@sha256:" + strings.Repeat("a", 64)}}
	restored, err := restore.Rewrite(template, plan)
	if err != nil {
		t.Fatal(err)
	}
	desired, _ := template.MarshalJSON()
	wantObject, _ := restored.MarshalJSON()
	// Every replica of the member's copy is ready: the restore came up.
	_ = unstructured.SetNestedField(restored.Object, int64(3), "status", "readyReplicas")
	observed, _ := restored.MarshalJSON()
	r = req(configv1alpha1.InterpreterOperationRetain, string(desired))
	r.ObservedObject = &runtime.RawExtension{Raw: observed}
	resp = s.interpret(t, r)
	got := apply(t, desired, resp)
	var want map[string]interface{}
	_ = json.Unmarshal(wantObject, &want)
	want["metadata"].(map[string]interface{})["annotations"].(map[string]interface{})[restore.AnnotationRestoreCompleted] = plan.Checkpoint
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Retain:\n%v\nwant\n%v", got, want)
	}

	r = req(configv1alpha1.InterpreterOperationAggregateStatus, string(desired))
	st, _ := json.Marshal(map[string]interface{}{"replicas": 3, "readyReplicas": 2, "generation": 2, "resourceTemplateGeneration": 2, "observedGeneration": 2})
	r.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{ClusterName: "m1", Status: &runtime.RawExtension{Raw: st}}}
	resp = s.interpret(t, r)
	if got := apply(t, desired, resp); got["status"].(map[string]interface{})["readyReplicas"] != float64(2) {
		t.Fatalf("AggregateStatus: %v", got["status"])
	}

	// A bad request answers an error, over the same server.
	bad := req("Explode", statefulSetJSON)
	if resp = s.interpret(t, bad); resp.Successful || resp.Status.Code != 400 || resp.UID != bad.UID {
		t.Fatalf("bad operation: %+v", resp)
	}

	// Health, readiness and metrics.
	for _, u := range []string{s.health + "/healthz", s.health + "/readyz"} {
		if code, _ := get(t, http.DefaultClient, u); code != http.StatusOK {
			t.Fatalf("%s: %d", u, code)
		}
	}
	code, metrics := get(t, http.DefaultClient, s.metrics+"/metrics")
	if code != http.StatusOK ||
		!strings.Contains(metrics, `stateshift_interpreter_requests_total{kind="StatefulSet",operation="ReviseReplica",result="success"}`) ||
		!strings.Contains(metrics, `stateshift_interpreter_requests_total{kind="StatefulSet",operation="other",result="error"}`) ||
		!strings.Contains(metrics, `stateshift_interpreter_request_duration_seconds_bucket{kind="StatefulSet",operation="InterpretStatus"`) {
		t.Fatalf("metrics %d:\n%s", code, grep(metrics, "stateshift_"))
	}

	// Graceful shutdown: Run returns nil and the port closes.
	s.stop(t)
	if _, err := s.client.Get(s.base + interpreter.Path); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCertificateRotation replaces tls.crt/tls.key under the running
// server: new connections get the new certificate without a restart.
func TestCertificateRotation(t *testing.T) {
	s := start(t, nil)
	first := peerSerial(t, s)
	next, err := s.ca.WriteServing(s.certDir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if first.Cmp(next) == 0 {
		t.Fatal("same serial")
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		got := peerSerial(t, s)
		if got.Cmp(next) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %s, want %s", got, next)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := req(configv1alpha1.InterpreterOperationInterpretHealth, statefulSetJSON)
	if resp := s.interpret(t, r); !resp.Successful {
		t.Fatalf("after rotation: %+v", resp)
	}
}

func peerSerial(t *testing.T, s *server) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.base, "https://"), &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestControllersNeedAPIServer: without an API server the webhook runs
// alone, and controllers are refused with a clear error.
func TestControllersNeedAPIServer(t *testing.T) {
	o := options.New()
	o.CertDir = t.TempDir()
	_, err := NewManager(o, func(manager.Manager) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("error = %v", err)
	}
	o.LeaderElect = true
	if err := o.Complete(); err == nil || !strings.Contains(err.Error(), "--leader-elect needs an API server") {
		t.Fatalf("Complete with leader election and no API server: %v", err)
	}
}

// TestControllersRunWithAPIServer: given a kubeconfig (a real API server),
// setups join the manager and their runnables start, with leader election.
func TestControllersRunWithAPIServer(t *testing.T) {
	env := testenv.Start(t)
	kubeconfig := writeKubeconfig(t, env)
	ran := make(chan struct{})
	s := start(t, func(o *options.Options) {
		o.Kubeconfig = kubeconfig
		o.LeaderElect = true
		o.LeaderElectionNamespace = "default"
	}, func(m manager.Manager) error {
		return m.Add(manager.RunnableFunc(func(ctx context.Context) error {
			close(ran)
			<-ctx.Done()
			return nil
		}))
	})
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not start")
	}
	r := req(configv1alpha1.InterpreterOperationInterpretHealth, statefulSetJSON)
	if resp := s.interpret(t, r); !resp.Successful {
		t.Fatalf("%+v", resp)
	}
}
