package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
)

// metricsServer is where /metrics is served. The agent runs with host
// networking, so an address other than loopback is reachable by anyone
// who reaches the node: --metrics-secure serves HTTPS and lets a request
// through only when the member's API server authenticates its bearer token
// (TokenReview) and authorizes get on the path (SubjectAccessReview), as
// the kubelet and kube-state-metrics do; the chart grants both reviews and
// ships a ClusterRole for the scraper. (controller-runtime's
// filters.WithAuthenticationAndAuthorization does the same through
// k8s.io/apiserver, whose dependencies the agent does not otherwise need.)
func metricsServer(o *options.Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsBindAddress}
	if !o.MetricsSecure {
		return m
	}
	m.SecureServing = true
	m.FilterProvider = withTokenReview
	m.CertDir = o.MetricsCertDir
	m.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		// HTTP/1.1 only: HTTP/2's stream resets let an unauthenticated
		// caller load the server (CVE-2023-44487) before any token check.
		c.NextProtos = []string{"http/1.1"}
	}}
	return m
}

// reviewTimeout bounds the two reviews of one request.
const reviewTimeout = 10 * time.Second

// allowedFor is how long an allowed token is remembered: a scrape every
// 15-60s then costs the API server two reviews a minute per node at most.
const allowedFor = time.Minute

// withTokenReview is a metricsserver.FilterProvider.
func withTokenReview(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	a := &reviewer{cs: cs, allowed: map[[32]byte]time.Time{}, now: time.Now}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, err := a.review(r)
			if err != nil {
				log.V(2).Info("metrics request refused", "code", code, "reason", err.Error())
				http.Error(w, http.StatusText(code), code)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

type reviewer struct {
	cs      kubernetes.Interface
	mu      sync.Mutex
	allowed map[[32]byte]time.Time // sha256 of the token -> until when
	now     func() time.Time
}

// review says whether the request may read the path: 200, or the status
// code to answer with and why not.
func (a *reviewer) review(r *http.Request) (int, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return http.StatusUnauthorized, errString("no bearer token")
	}
	key := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + " " + token))
	if a.remembered(key) {
		return http.StatusOK, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), reviewTimeout)
	defer cancel()
	tr, err := a.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, errString("token not authenticated")
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, errString(u.Username + " may not get " + r.URL.Path)
	}
	a.remember(key)
	return http.StatusOK, nil
}

func (a *reviewer) remembered(key [32]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.allowed[key]
	return ok && a.now().Before(until)
}

func (a *reviewer) remember(key [32]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, until := range a.allowed {
		if !now.Before(until) {
			delete(a.allowed, k) // bounded by the scrapers seen in a minute
		}
	}
	a.allowed[key] = now.Add(allowedFor)
}

type errString string

func (e errString) Error() string { return string(e) }
