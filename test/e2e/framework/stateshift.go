package framework

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"

	"github.com/stateshift/stateshift/test/nodesim"
)

// Where local-up runs stateshift's parts (hack/local/lib.sh, stateshift.sh).
const (
	// InterpreterURL is the interpreter webhook the
	// ResourceInterpreterWebhookConfiguration points at.
	InterpreterURL = "https://127.0.0.1:9443/interpreter"
	// InterpreterMetricsURL is the webhook's Prometheus endpoint.
	InterpreterMetricsURL = "http://127.0.0.1:19080/metrics"
	// InterpreterConfigName is the ResourceInterpreterWebhookConfiguration
	// hack/apply-interpreter-config.sh applies.
	InterpreterConfigName = "stateshift-interpreter"
	// NodePort is the simulated kubelets' port.
	NodePort = 10250
)

// NodeIPs are the loopback addresses of the members' simulated nodes.
var NodeIPs = map[string]string{Member1: "127.0.0.11", Member2: "127.0.0.12"}

// RegistryHost is local-up's registry (STATESHIFT_REGISTRY_PORT, default 5000).
func RegistryHost() string {
	port := os.Getenv("STATESHIFT_REGISTRY_PORT")
	if port == "" {
		port = "5000"
	}
	return "127.0.0.1:" + port
}

// InterpreterCertDir holds the webhook's CA and serving pair, made by
// hack/apply-interpreter-config.sh.
func (e *Env) InterpreterCertDir() string {
	return filepath.Join(e.RunDir, "interpreter-webhook", "certs")
}

// ApplyInterpreterConfig runs hack/apply-interpreter-config.sh as local-up
// does (and as a user would): the configuration points Karmada at the
// webhook local-up runs. Re-running it is safe.
func (e *Env) ApplyInterpreterConfig(ctx context.Context) (string, error) {
	return e.interpreterConfigScript(ctx, "--url", InterpreterURL, "--cert-dir", e.InterpreterCertDir())
}

// DeleteInterpreterConfig runs hack/apply-interpreter-config.sh --delete.
func (e *Env) DeleteInterpreterConfig(ctx context.Context) (string, error) {
	return e.interpreterConfigScript(ctx, "--delete")
}

func (e *Env) interpreterConfigScript(ctx context.Context, args ...string) (string, error) {
	script := filepath.Join(Root(), "hack", "apply-interpreter-config.sh")
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig("karmada"), "KUBECTL="+e.Kubectl)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hack/apply-interpreter-config.sh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Interpret sends one resource-interpreter request to the running webhook
// over HTTPS, exactly as Karmada does (a ResourceInterpreterContext with
// the request), and returns its response. It fails on a transport error or
// an unsuccessful answer.
func (e *Env) Interpret(ctx context.Context, req configv1alpha1.ResourceInterpreterRequest) (*configv1alpha1.ResourceInterpreterResponse, error) {
	caPEM, err := os.ReadFile(filepath.Join(e.InterpreterCertDir(), "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("interpreter CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("interpreter CA: no certificate in %s", e.InterpreterCertDir())
	}
	body, err := json.Marshal(configv1alpha1.ResourceInterpreterContext{
		TypeMeta: metav1.TypeMeta{APIVersion: configv1alpha1.SchemeGroupVersion.String(), Kind: "ResourceInterpreterContext"},
		Request:  &req,
	})
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, InterpreterURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	resp, err := c.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Operation, InterpreterURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", req.Operation, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s: %s", req.Operation, resp.Status, raw)
	}
	var out configv1alpha1.ResourceInterpreterContext
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: decode answer: %w", req.Operation, err)
	}
	if out.Response == nil {
		return nil, fmt.Errorf("%s: answer has no response: %s", req.Operation, raw)
	}
	if out.Response.UID != req.UID {
		return nil, fmt.Errorf("%s: answer uid %q, request uid %q", req.Operation, out.Response.UID, req.UID)
	}
	if !out.Response.Successful {
		return nil, fmt.Errorf("%s: unsuccessful: %+v", req.Operation, out.Response.Status)
	}
	return out.Response, nil
}

// CounterKey names one series of stateshift_interpreter_requests_total.
type CounterKey struct{ Operation, Kind, Result string }

// InterpreterCounters are the webhook's request counters.
type InterpreterCounters map[CounterKey]float64

// Sum adds the counters of an operation and kind over every result.
func (c InterpreterCounters) Sum(operation, kind string) float64 {
	var n float64
	for k, v := range c {
		if k.Operation == operation && k.Kind == kind {
			n += v
		}
	}
	return n
}

var counterLine = regexp.MustCompile(`^stateshift_interpreter_requests_total\{([^}]*)\}\s+(\S+)`)
var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// InterpreterRequests scrapes the webhook's /metrics for
// stateshift_interpreter_requests_total.
func (e *Env) InterpreterRequests(ctx context.Context) (InterpreterCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, InterpreterMetricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", InterpreterMetricsURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", InterpreterMetricsURL, resp.Status)
	}
	out := InterpreterCounters{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		m := counterLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var k CounterKey
		for _, l := range labelPair.FindAllStringSubmatch(m[1], -1) {
			switch l[1] {
			case "operation":
				k.Operation = l[2]
			case "kind":
				k.Kind = l[2]
			case "result":
				k.Result = l[2]
			}
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", sc.Text(), err)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", InterpreterMetricsURL, err)
	}
	return out, nil
}

// NodeEndpoint is the kubelet API of a member's simulated node.
func NodeEndpoint(cluster string) string {
	return fmt.Sprintf("https://%s:%d", NodeIPs[cluster], NodePort)
}

// NodeState reads the simulated node's container states (nodesim's state
// endpoint), verifying its certificate with the CA in the run folder.
func (e *Env) NodeState(ctx context.Context, cluster, namespace, pod, container string) ([]nodesim.ContainerState, error) {
	node := cluster + "-node"
	caPEM, err := os.ReadFile(filepath.Join(e.RunDir, cluster, node, "data", "pki", "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("%s's node CA: %w", cluster, err)
	}
	return nodesim.FetchState(ctx, NodeEndpoint(cluster), caPEM, namespace, pod, container)
}
