package nodesim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kubeletAuth checks requests as the kubelet's webhook authenticator and
// authorizer do: the bearer token through a TokenReview, then a
// SubjectAccessReview on the node's subresource, each answer kept for the
// kubelet's cache TTLs (an error is never kept).
type kubeletAuth struct {
	client   kubernetes.Interface
	nodeName string
	ttl      AuthCacheTTLs
	now      func() time.Time
	tokens   answerCache[*authenticationv1.UserInfo]
	access   answerCache[bool]
}

// answerCache keeps the API server's answers until they expire. It is
// swept of expired answers whenever it holds more than answerCacheSweepAt,
// so its size follows the callers of the last TTL, not the node's age.
type answerCache[T any] struct {
	mu      sync.Mutex
	answers map[string]cachedAnswer[T]
}

type cachedAnswer[T any] struct {
	value   T
	expires time.Time
}

const answerCacheSweepAt = 1024

func (c *answerCache[T]) get(key string, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answers[key]
	if !ok || !now.Before(a.expires) {
		var zero T
		return zero, false
	}
	return a.value, true
}

func (c *answerCache[T]) put(key string, value T, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil {
		c.answers = map[string]cachedAnswer[T]{}
	}
	if len(c.answers) >= answerCacheSweepAt {
		for k, a := range c.answers {
			if !now.Before(a.expires) {
				delete(c.answers, k)
			}
		}
	}
	c.answers[key] = cachedAnswer[T]{value: value, expires: now.Add(ttl)}
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
	if u, ok := a.tokens.get(key, a.now()); ok {
		return u, nil
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
	a.tokens.put(key, u, a.now(), a.ttl.Token)
	return u, nil
}

// authorize asks whether u may <verb> nodes/<subresource> of this node.
func (a *kubeletAuth) authorize(ctx context.Context, u *authenticationv1.UserInfo, verb, subresource string) (bool, error) {
	key := accessKey(u, verb, subresource)
	if allowed, ok := a.access.get(key, a.now()); ok {
		return allowed, nil
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
	a.access.put(key, sar.Status.Allowed, a.now(), ttl)
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
