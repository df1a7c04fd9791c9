package nodesim

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kubeletAuth checks requests as the kubelet's webhook authenticator and
// authorizer do: the bearer token through a TokenReview, then a
// SubjectAccessReview on the node's subresource.
type kubeletAuth struct {
	client   kubernetes.Interface
	nodeName string
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
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, nil
	}
	return &tr.Status.User, nil
}

// authorize asks whether u may <verb> nodes/<subresource> of this node.
func (a *kubeletAuth) authorize(ctx context.Context, u *authenticationv1.UserInfo, verb, subresource string) (bool, error) {
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
