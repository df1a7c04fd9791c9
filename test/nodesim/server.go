package nodesim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
)

// StatePath serves the simulated containers' state (read-only, loopback
// clients only, no token: it holds counters and hashes, never memory).
const StatePath = "/nodesim/state"

const checkpointPrefix = "/checkpoint/"

// ServeHTTP is the kubelet API: every path but StatePath goes through the
// kubelet's authentication and authorization filter first, as with the
// real kubelet, so the status codes and bodies match it.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == StatePath {
		n.serveState(w, r)
		return
	}
	ctx := r.Context()
	logger := klog.FromContext(ctx)
	user, err := n.auth.authenticate(ctx, r)
	if err != nil {
		logger.Error(err, "Unable to authenticate the request due to an error")
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if user == nil {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	verb, sub := apiVerb(r.Method), subresourceFor(r.URL.Path)
	allowed, err := n.auth.authorize(ctx, user, verb, sub)
	if err != nil {
		logger.Error(err, "Authorization error", "user", user.Username, "verb", verb, "resource", "nodes", "subresource", sub)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)", user.Username, verb, "nodes", sub))
		return
	}
	if !allowed {
		logger.V(2).Info("Forbidden", "user", user.Username, "verb", verb, "resource", "nodes", "subresource(s)", []string{sub})
		writeError(w, http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)\n", user.Username, verb, "nodes", []string{sub}))
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, checkpointPrefix); ok {
		parts := strings.Split(rest, "/")
		if len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "" {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeError(w, http.StatusMethodNotAllowed, "405: Method Not Allowed")
				return
			}
			n.serveCheckpoint(w, r, parts[0], parts[1], parts[2])
			return
		}
	}
	writeError(w, http.StatusNotFound, "404: Page Not Found")
}

// serveCheckpoint mirrors the kubelet's checkpoint handler.
func (n *Node) serveCheckpoint(w http.ResponseWriter, r *http.Request, namespace, podName, containerName string) {
	pod, err := n.podLister.Pods(namespace).Get(podName)
	if err != nil || pod.Spec.NodeName != n.cfg.NodeName {
		if err != nil && !apierrors.IsNotFound(err) {
			klog.FromContext(r.Context()).Error(err, "Look up pod", "pod", namespace+"/"+podName)
		}
		writeError(w, http.StatusNotFound, "pod does not exist")
		return
	}
	found := false
	for _, c := range pod.Spec.Containers {
		found = found || c.Name == containerName
	}
	for _, c := range pod.Spec.InitContainers {
		found = found || c.Name == containerName
	}
	for _, c := range pod.Spec.EphemeralContainers {
		found = found || c.Name == containerName
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("container %v does not exist", containerName))
		return
	}
	var timeout int64
	if ts := r.URL.Query()["timeout"]; len(ts) > 0 {
		// The kubelet takes the last value.
		timeout, err = strconv.ParseInt(ts[len(ts)-1], 10, 64)
		if err != nil {
			writeError(w, http.StatusNotFound, "cannot parse value of timeout parameter")
			return
		}
	}
	location, err := n.checkpointContainer(r.Context(), pod, containerName, timeout)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("checkpointing of %v/%v/%v failed (%v)", namespace, podName, containerName, err))
		return
	}
	body, _ := json.Marshal(struct {
		Items []string `json:"items"`
	}{[]string{location}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (n *Node) serveState(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		writeError(w, http.StatusForbidden, "Forbidden: "+StatePath+" is served to loopback clients only")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "405: Method Not Allowed")
		return
	}
	q := r.URL.Query()
	ns, pod, ctr := q.Get("namespace"), q.Get("pod"), q.Get("container")
	list := n.states(func(p *podState, c *container) bool {
		return (ns == "" || p.namespace == ns) && (pod == "" || p.name == pod) && (ctr == "" || c.name == ctr)
	})
	if list == nil {
		list = []ContainerState{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// writeError answers as go-restful's WriteErrorString does: the status and
// the bare message.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// FetchState reads StatePath of a node in another process. endpoint is
// https://<IP>:<Port>; caPEM verifies its serving certificate. Empty
// namespace, pod or container match all.
func FetchState(ctx context.Context, endpoint string, caPEM []byte, namespace, pod, container string) ([]ContainerState, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("node CA: no certificate in PEM")
	}
	client := &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+StatePath, nil)
	if err != nil {
		return nil, fmt.Errorf("node state request: %w", err)
	}
	q := req.URL.Query()
	for k, v := range map[string]string{"namespace": namespace, "pod": pod, "container": container} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req.URL.RawQuery = q.Encode()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node state: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("node state: %s: %s", resp.Status, b)
	}
	var list []ContainerState
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("node state: decode: %w", err)
	}
	return list, nil
}
