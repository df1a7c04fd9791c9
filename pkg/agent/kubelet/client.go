// Package kubelet calls the kubelet's checkpoint API directly on a node:
// POST https://<node>:<port>/checkpoint/{namespace}/{pod}/{container}.
// It never goes through the API server's node proxy, which would need
// nodes/proxy (a permission that also grants exec on every pod).
package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPort is the kubelet's secure port.
const DefaultPort = 10250

// DefaultCallTimeout bounds a call that passes no timeout to the kubelet:
// the kubelet's default runtime request timeout (2 minutes) plus a margin.
const DefaultCallTimeout = 2*time.Minute + callMargin

// callMargin lets the kubelet's own timeout error arrive before ours.
const callMargin = 30 * time.Second

// maxBody bounds what is read from the kubelet: a checkpoint answer is a
// few hundred bytes.
const maxBody = 64 << 10

// Config says how to reach and authenticate to the kubelet.
type Config struct {
	// TokenFile is the projected service-account token. It is re-read on
	// every call because the kubelet rotates it.
	TokenFile string
	// CAFile verifies the kubelet's serving certificate.
	CAFile string
	// InsecureSkipTLSVerify accepts any kubelet certificate. Only by an
	// explicit flag: kubelets often serve self-signed certificates.
	InsecureSkipTLSVerify bool
	// ServerName overrides the name checked in the kubelet's certificate
	// (default: the host being dialled).
	ServerName string
	// CallTimeout bounds a call that gives the kubelet no timeout; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
}

// Client calls one node's kubelet at a time; it is safe for concurrent use.
type Client struct {
	cfg Config

	mu      sync.Mutex
	http    *http.Client
	caStamp string // modification time and size of CAFile behind http
}

// New builds a client. Without a CA file and without the explicit insecure
// flag, the system roots verify the kubelet.
func New(cfg Config) (*Client, error) {
	if cfg.TokenFile == "" {
		return nil, errors.New("kubelet client: a token file is required")
	}
	c := &Client{cfg: cfg}
	if _, err := c.httpClient(); err != nil {
		return nil, err
	}
	return c, nil
}

// httpClient returns the HTTP client, rebuilt when the CA file changed: a
// kubelet's serving CA rotates, and the agent must follow without a restart.
func (c *Client) httpClient() (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp := ""
	if c.cfg.CAFile != "" && !c.cfg.InsecureSkipTLSVerify {
		fi, err := os.Stat(c.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet CA %s: %w", c.cfg.CAFile, err)
		}
		stamp = fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
	}
	if c.http != nil && stamp == c.caStamp {
		return c.http, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.cfg.ServerName}
	switch {
	case c.cfg.InsecureSkipTLSVerify:
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // explicit operator choice, see --kubelet-insecure-skip-tls-verify
	case c.cfg.CAFile != "":
		pem, err := os.ReadFile(c.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet CA %s: %w", c.cfg.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubelet CA %s: no PEM certificate in it", c.cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
	c.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsCfg,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
	c.caStamp = stamp
	return c.http, nil
}

// Reason classifies a failed checkpoint call for conditions and metrics.
type Reason string

const (
	ReasonUnauthorized Reason = "KubeletUnauthorized"
	ReasonForbidden    Reason = "KubeletForbidden"
	ReasonNotFound     Reason = "KubeletNotFound"
	ReasonRuntimeError Reason = "KubeletRuntimeError"
	ReasonTimeout      Reason = "KubeletTimeout"
	ReasonUnreachable  Reason = "KubeletUnreachable"
	ReasonBadResponse  Reason = "KubeletBadResponse"
)

// Error is a failed checkpoint call with a message fit for a condition.
type Error struct {
	Reason Reason
	Code   int // HTTP status, 0 when there was no answer
	Msg    string
	Err    error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Retryable says whether a later attempt may succeed without anyone acting.
// Authorization errors are retried too: RBAC is often applied after the agent.
func (e *Error) Retryable() bool {
	return e.Reason != ReasonBadResponse
}

// Target is the container to checkpoint and the node that runs it.
type Target struct {
	Host      string // the node's address (InternalIP)
	Port      int    // the kubelet's port, DefaultPort when 0
	Namespace string
	Pod       string
	Container string
}

func (t Target) String() string {
	return fmt.Sprintf("%s/%s/%s", t.Namespace, t.Pod, t.Container)
}

// Checkpoint asks the kubelet to checkpoint one container and returns the
// archive paths it wrote on the node. timeout is passed to the kubelet
// (0 = the runtime's default); the call itself ends at timeout plus a
// margin, or DefaultCallTimeout, or ctx's deadline, whichever comes first.
func (c *Client) Checkpoint(ctx context.Context, t Target, timeout time.Duration) ([]string, error) {
	token, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return nil, &Error{Reason: ReasonUnauthorized, Msg: fmt.Sprintf("read service-account token %s: %v", c.cfg.TokenFile, err), Err: err}
	}
	port := t.Port
	if port == 0 {
		port = DefaultPort
	}
	u := url.URL{
		Scheme: "https",
		Host:   net.JoinHostPort(t.Host, strconv.Itoa(port)),
		Path:   "/checkpoint/" + url.PathEscape(t.Namespace) + "/" + url.PathEscape(t.Pod) + "/" + url.PathEscape(t.Container),
	}
	// The HTTP call always has a deadline: a kubelet (or something posing as
	// one) that never answers must not pin one of the agent's slots.
	deadline := c.cfg.CallTimeout
	if deadline <= 0 {
		deadline = DefaultCallTimeout
	}
	if timeout > 0 {
		secs := int64((timeout + time.Second - 1) / time.Second)
		u.RawQuery = "timeout=" + strconv.FormatInt(secs, 10)
		// The kubelet gets the runtime's timeout; give the HTTP call a margin
		// on top so the kubelet's own error, not ours, reaches the user.
		deadline = timeout + callMargin
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, &Error{Reason: ReasonBadResponse, Msg: fmt.Sprintf("checkpoint %s: %v", t, err), Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")

	hc, err := c.httpClient()
	if err != nil {
		return nil, &Error{Reason: ReasonUnreachable, Msg: fmt.Sprintf("checkpoint %s: %v", t, err), Err: err}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, &Error{Reason: ReasonTimeout, Msg: fmt.Sprintf("checkpoint %s: kubelet on %s did not answer in time: %v", t, u.Host, err), Err: err}
		}
		return nil, &Error{Reason: ReasonUnreachable, Msg: fmt.Sprintf("checkpoint %s: kubelet on %s unreachable: %v", t, u.Host, err), Err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	text := strings.TrimSpace(string(body))
	if len(text) > 300 {
		text = text[:300] + "..."
	}

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, &Error{Reason: ReasonUnauthorized, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s rejected the agent's token (401 %s): check the service-account token and the kubelet's --authentication-token-webhook", t, u.Host, text)}
	case http.StatusForbidden:
		return nil, &Error{Reason: ReasonForbidden, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s forbids it (403 %s): the agent's service account needs create on nodes/checkpoint", t, u.Host, text)}
	case http.StatusNotFound:
		return nil, &Error{Reason: ReasonNotFound, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s answered 404 (%s): the pod or container is unknown to it, or the ContainerCheckpoint feature gate is off", t, u.Host, text)}
	case http.StatusInternalServerError:
		return nil, &Error{Reason: ReasonRuntimeError, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: the container runtime on %s failed (500 %s): check that CRI-O/containerd has checkpoint support and CRIU works", t, u.Host, text)}
	default:
		return nil, &Error{Reason: ReasonBadResponse, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s answered %d (%s)", t, u.Host, resp.StatusCode, text)}
	}
	var out struct {
		Items []string `json:"items"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, &Error{Reason: ReasonBadResponse, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s answered 200 with a body that is not {\"items\":[...]}: %v", t, u.Host, err), Err: err}
	}
	if len(out.Items) == 0 {
		return nil, &Error{Reason: ReasonBadResponse, Code: resp.StatusCode,
			Msg: fmt.Sprintf("checkpoint %s: kubelet on %s answered 200 without an archive path", t, u.Host)}
	}
	return out.Items, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
