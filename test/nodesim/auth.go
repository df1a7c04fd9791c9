package nodesim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// kubeletAuth checks requests as the kubelet's webhook authenticator and
// authorizer do: the bearer token through a TokenReview, then a
// SubjectAccessReview on the node's subresource, each answer kept for the
// kubelet's cache TTLs (an error is never kept).
type kubeletAuth struct {
	client   kubernetes.Interface
	nodeName string
	ttl      AuthCacheTTLs
	// tokens maps tokenKey to *UserInfo (nil: rejected), access maps
	// accessKey to the decision; expired answers are dropped as new ones
	// are kept, so the caches follow the callers of the last TTL.
	tokens, access *cache.Expiring
}

// newKubeletAuth is the node's authenticator and authorizer; clk tells
// the caches' time.
func newKubeletAuth(client kubernetes.Interface, nodeName string, ttl AuthCacheTTLs, clk clock.Clock) *kubeletAuth {
	return &kubeletAuth{client: client, nodeName: nodeName, ttl: ttl,
		tokens: cache.NewExpiringWithClock(clk), access: cache.NewExpiringWithClock(clk)}
}

// keep caches an answer for ttl; a TTL that is not positive keeps nothing.
func keep(c *cache.Expiring, key string, value any, ttl time.Duration) {
	if ttl > 0 {
		c.Set(key, value, ttl)
	}
}

// tokenKey keeps no token in memory longer than the request: the cache is
// keyed by its SHA-256.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// accessKey is everything a SubjectAccessReview of this node depends on.
func accessKey(u *authenticationv1.UserInfo, verb, subresource string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q %q %q", u.Username, u.UID, strings.Join(u.Groups, "\x00"), verb, subresource)
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %q=%q", k, strings.Join(u.Extra[k], "\x00"))
	}
	return b.String()
}

// authenticate returns the user of the request's bearer token, or nil when
// there is none or the API server does not accept it.
func (a *kubeletAuth) authenticate(ctx context.Context, r *http.Request) (*authenticationv1.UserInfo, error) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, nil
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, nil
	}
	key := tokenKey(token)
	if u, ok := a.tokens.Get(key); ok {
		return u.(*authenticationv1.UserInfo), nil
	}
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	var u *authenticationv1.UserInfo
	if tr.Status.Authenticated {
		u = &tr.Status.User
	}
	// As the kubelet's token cache: a rejected token is kept as long as
	// an accepted one.
	keep(a.tokens, key, u, a.ttl.Token)
	return u, nil
}

// authorize asks whether u may <verb> nodes/<subresource> of this node.
func (a *kubeletAuth) authorize(ctx context.Context, u *authenticationv1.UserInfo, verb, subresource string) (bool, error) {
	key := accessKey(u, verb, subresource)
	if allowed, ok := a.access.Get(key); ok {
		return allowed.(bool), nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   u.Username,
			Groups: u.Groups,
			UID:    u.UID,
			Extra:  extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb:        verb,
				Group:       "",
				Version:     "v1",
				Resource:    "nodes",
				Subresource: subresource,
				Name:        a.nodeName,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	ttl := a.ttl.Allowed
	if !sar.Status.Allowed {
		ttl = a.ttl.Denied
	}
	keep(a.access, key, sar.Status.Allowed, ttl)
	return sar.Status.Allowed, nil
}

// apiVerb maps an HTTP method to a verb as the kubelet does.
func apiVerb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodGet:
		return "get"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// subresourceFor maps a kubelet path to its authorization subresource.
func subresourceFor(path string) string {
	for _, p := range []struct{ prefix, sub string }{
		{"/stats", "stats"}, {"/metrics", "metrics"}, {"/logs", "log"}, {"/checkpoint", "checkpoint"},
		{"/statusz", "statusz"}, {"/flagz", "configz"},
	} {
		if path == p.prefix || strings.HasPrefix(path, p.prefix+"/") {
			return p.sub
		}
	}
	return "proxy"
}
