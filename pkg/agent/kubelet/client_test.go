package kubelet

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stateshift/stateshift/test/selfsigned"
)

// fakeKubelet answers like the kubelet's checkpoint handler; only the
// status codes and bodies under test differ per case.
func fakeKubelet(t *testing.T, h http.HandlerFunc) (Target, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return Target{Host: host, Port: p, Namespace: "ns", Pod: "db-0", Container: "db"}, ca
}

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheckpointSuccessPathAndToken(t *testing.T) {
	var gotPath, gotAuth, gotQuery, gotMethod string
	target, ca := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth, gotQuery, gotMethod = r.URL.Path, r.Header.Get("Authorization"), r.URL.RawQuery, r.Method
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":["/var/lib/kubelet/checkpoints/checkpoint-db-0_ns-db-2026-11-26T07:00:00Z.tar"]}`))
	})
	tf := tokenFile(t, "token-one")
	c, err := New(Config{TokenFile: tf, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	items, err := c.Checkpoint(context.Background(), target, 20*time.Second)
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if len(items) != 1 || !strings.HasSuffix(items[0], "checkpoint-db-0_ns-db-2026-11-26T07:00:00Z.tar") {
		t.Fatalf("items = %v", items)
	}
	if gotMethod != http.MethodPost || gotPath != "/checkpoint/ns/db-0/db" || gotQuery != "timeout=20" {
		t.Fatalf("request %s %s?%s", gotMethod, gotPath, gotQuery)
	}
	if gotAuth != "Bearer token-one" {
		t.Fatalf("Authorization = %q", gotAuth)
	}
	// The projected token rotates: the next call must send the new one.
	if err := os.WriteFile(tf, []byte("token-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkpoint(context.Background(), target, 0); err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Bearer token-two" || gotQuery != "" {
		t.Fatalf("after rotation Authorization = %q query = %q", gotAuth, gotQuery)
	}
}

func TestCheckpointErrorsBecomeClearReasons(t *testing.T) {
	cases := []struct {
		name     string
		code     int
		body     string
		reason   Reason
		contains string
	}{
		{"unauthorized", 401, "Unauthorized", ReasonUnauthorized, "rejected the agent's token"},
		{"forbidden", 403, "Forbidden (user=system:serviceaccount:x:y, verb=create, resource=nodes, subresource=checkpoint)", ReasonForbidden, "needs create on nodes/checkpoint"},
		{"not found", 404, "404 page not found", ReasonNotFound, "ContainerCheckpoint feature gate"},
		{"runtime error", 500, "checkpoint/restore support not available", ReasonRuntimeError, "checkpoint/restore support not available"},
		{"garbage json", 200, "<html>not json", ReasonBadResponse, "not {\"items\":[...]}"},
		{"empty items", 200, `{"items":[]}`, ReasonBadResponse, "without an archive path"},
		{"teapot", 418, "", ReasonBadResponse, "answered 418"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target, ca := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			})
			c, err := New(Config{TokenFile: tokenFile(t, "tok"), CAFile: ca})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Checkpoint(context.Background(), target, 0)
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("error %v is not a *kubelet.Error", err)
			}
			if ke.Reason != tc.reason || !strings.Contains(ke.Msg, tc.contains) || !strings.Contains(ke.Msg, "ns/db-0/db") {
				t.Fatalf("got reason %s msg %q; want %s containing %q", ke.Reason, ke.Msg, tc.reason, tc.contains)
			}
		})
	}
}

func TestCheckpointTimeoutIsBounded(t *testing.T) {
	var calls atomic.Int32
	target, ca := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-r.Context().Done()
	})
	c, err := New(Config{TokenFile: tokenFile(t, "tok"), CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Checkpoint(ctx, target, 0)
	var ke *Error
	if !errors.As(err, &ke) || ke.Reason != ReasonTimeout {
		t.Fatalf("got %v, want a KubeletTimeout error", err)
	}
	if time.Since(start) > 5*time.Second || calls.Load() != 1 {
		t.Fatalf("took %s with %d calls", time.Since(start), calls.Load())
	}
}

func TestKubeletTLSIsVerified(t *testing.T) {
	target, _ := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"items":["/x.tar"]}`))
	})
	// A CA that did not sign the kubelet's certificate: the call must fail.
	otherCA := selfSignedCA(t)
	c, err := New(Config{TokenFile: tokenFile(t, "secret-token"), CAFile: otherCA})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Checkpoint(context.Background(), target, 0)
	var ke *Error
	if !errors.As(err, &ke) || ke.Reason != ReasonUnreachable || !strings.Contains(ke.Msg, "certificate") {
		t.Fatalf("got %v, want a certificate verification failure", err)
	}
	// Only the explicit insecure flag accepts an unknown certificate.
	c, err = New(Config{TokenFile: tokenFile(t, "secret-token"), InsecureSkipTLSVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkpoint(context.Background(), target, 0); err != nil {
		t.Fatalf("insecure mode: %v", err)
	}
}

// selfSignedCA writes a fresh CA certificate (httptest's servers all share one).
func selfSignedCA(t *testing.T) string {
	t.Helper()
	ca, err := selfsigned.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(f, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The kubelet's CA rotates (or the simulator restarts with a new one): the
// client follows the file without a restart.
func TestKubeletCAFileIsReloaded(t *testing.T) {
	target, ca := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"items":["/x.tar"]}`))
	})
	good, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(selfSignedCA(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, other, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{TokenFile: tokenFile(t, "tok"), CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkpoint(context.Background(), target, 0); err == nil {
		t.Fatal("a kubelet certificate from another CA was accepted")
	}
	if err := os.WriteFile(ca, good, 0o600); err != nil {
		t.Fatal(err)
	}
	// A different size or time marks the change; make sure the time moves.
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(ca, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Checkpoint(context.Background(), target, 0); err != nil {
		t.Fatalf("after the CA file changed: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no token file accepted")
	}
	bad := filepath.Join(t.TempDir(), "ca.crt")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := New(Config{TokenFile: "/x", CAFile: bad}); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("bad CA: %v", err)
	}
	c, _ := New(Config{TokenFile: filepath.Join(t.TempDir(), "missing"), InsecureSkipTLSVerify: true})
	_, err := c.Checkpoint(context.Background(), Target{Host: "127.0.0.1", Port: 1, Namespace: "a", Pod: "b", Container: "c"}, 0)
	var ke *Error
	if !errors.As(err, &ke) || ke.Reason != ReasonUnauthorized || !strings.Contains(ke.Msg, "service-account token") {
		t.Fatalf("missing token: %v", err)
	}
}

// A kubelet that never answers, called with no timeout and a context
// without deadline (timeoutSeconds unset): the call still ends, as a
// KubeletTimeout, at the client's own deadline.
func TestSecurityKubeletCallHasDeadlineWithoutTimeout(t *testing.T) {
	target, ca := fakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c, err := New(Config{TokenFile: tokenFile(t, "tok"), CAFile: ca, CallTimeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := c.Checkpoint(context.Background(), target, 0); done <- err }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the kubelet call with timeout 0 has no deadline: still waiting after 20s")
	}
	var ke *Error
	if !errors.As(err, &ke) || ke.Reason != ReasonTimeout || !strings.Contains(ke.Msg, "did not answer in time") {
		t.Fatalf("got %v, want a KubeletTimeout error", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 10*time.Second {
		t.Fatalf("the call ended after %s, want about the 400ms call timeout", took)
	}
	if DefaultCallTimeout <= 2*time.Minute {
		t.Fatalf("DefaultCallTimeout %s leaves the kubelet's own 2m runtime timeout no margin", DefaultCallTimeout)
	}
}
