package nodesim

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeReviewer answers TokenReviews and SubjectAccessReviews as an API
// server would, counting them, with answers the test changes as it goes.
type fakeReviewer struct {
	tokenReviews, accessReviews int
	authenticated, allowed      bool
	fail                        bool
}

func (f *fakeReviewer) client() *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		f.tokenReviews++
		if f.fail {
			return true, nil, errors.New("connection refused")
		}
		tr := &authenticationv1.TokenReview{}
		tr.Status.Authenticated = f.authenticated
		tr.Status.User = authenticationv1.UserInfo{Username: "system:serviceaccount:stateshift-system:checkpoint-agent"}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		f.accessReviews++
		if f.fail {
			return true, nil, errors.New("connection refused")
		}
		sar := &authorizationv1.SubjectAccessReview{}
		sar.Status.Allowed = f.allowed
		return true, sar, nil
	})
	return cs
}

func bearer(token string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1:10250/checkpoint/ns/pod/c", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// TestAuthCachesAnswersAsTheKubelet checks that the simulated kubelet asks
// the API server about a caller as often as the real one configured with
// the same TTLs: once per TTL for a token, once per TTL for an allowed
// access and once per (shorter) TTL for a denied one, never keeping an
// error.
func TestAuthCachesAnswersAsTheKubelet(t *testing.T) {
	ctx := context.Background()
	f := &fakeReviewer{authenticated: true, allowed: true}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	a := &kubeletAuth{client: f.client(), nodeName: "node-1", now: func() time.Time { return now },
		ttl: AuthCacheTTLs{Token: 10 * time.Second, Allowed: 10 * time.Second, Denied: 5 * time.Second}}

	for i := 0; i < 3; i++ {
		u, err := a.authenticate(ctx, bearer("token-a"))
		if err != nil || u == nil {
			t.Fatalf("authenticate: %v, %v", u, err)
		}
		ok, err := a.authorize(ctx, u, "create", "checkpoint")
		if err != nil || !ok {
			t.Fatalf("authorize: %v, %v", ok, err)
		}
	}
	if f.tokenReviews != 1 || f.accessReviews != 1 {
		t.Fatalf("3 calls within the TTL made %d TokenReviews and %d SubjectAccessReviews, want 1 and 1", f.tokenReviews, f.accessReviews)
	}

	// Another verb or token is another question.
	u, _ := a.authenticate(ctx, bearer("token-a"))
	if _, err := a.authorize(ctx, u, "get", "checkpoint"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.authenticate(ctx, bearer("token-b")); err != nil {
		t.Fatal(err)
	}
	if f.tokenReviews != 2 || f.accessReviews != 2 {
		t.Fatalf("new token and verb: %d TokenReviews, %d SubjectAccessReviews, want 2 and 2", f.tokenReviews, f.accessReviews)
	}

	// Past the TTL the API server is asked again, and a revoked
	// permission is denied; the denial is kept for the shorter TTL.
	now = now.Add(10 * time.Second)
	f.allowed = false
	if ok, _ := a.authorize(ctx, u, "create", "checkpoint"); ok {
		t.Fatal("an expired allowed answer was used after the TTL")
	}
	f.allowed = true
	now = now.Add(4 * time.Second)
	if ok, _ := a.authorize(ctx, u, "create", "checkpoint"); ok {
		t.Fatal("a denial was not kept for the denied TTL")
	}
	now = now.Add(time.Second)
	if ok, _ := a.authorize(ctx, u, "create", "checkpoint"); !ok {
		t.Fatal("a granted permission was still denied after the denied TTL")
	}

	// A rejected token is kept like an accepted one.
	f.authenticated = false
	if u, _ := a.authenticate(ctx, bearer("token-c")); u != nil {
		t.Fatal("a rejected token authenticated")
	}
	f.authenticated = true
	if u, _ := a.authenticate(ctx, bearer("token-c")); u != nil {
		t.Fatal("a rejected token was not kept for the token TTL")
	}

	// Errors are never kept: the next call asks again.
	reviews := f.accessReviews
	f.fail = true
	if _, err := a.authorize(ctx, u, "delete", "checkpoint"); err == nil {
		t.Fatal("an API server error was not returned")
	}
	f.fail = false
	if ok, err := a.authorize(ctx, u, "delete", "checkpoint"); err != nil || !ok {
		t.Fatalf("after an error: %v, %v", ok, err)
	}
	if f.accessReviews != reviews+2 {
		t.Fatalf("an error was kept: %d SubjectAccessReviews, want %d", f.accessReviews, reviews+2)
	}
}

// TestAuthCacheStaysBounded checks that the cache does not grow with the
// number of callers over the node's life: expired answers are swept.
func TestAuthCacheStaysBounded(t *testing.T) {
	var c answerCache[bool]
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 10*answerCacheSweepAt; i++ {
		c.put(tokenKey(string(rune(i))+"-token"), true, now, time.Second)
		now = now.Add(10 * time.Millisecond)
	}
	// One second holds 100 answers; a sweep runs before every insert
	// past answerCacheSweepAt.
	if n := len(c.answers); n > answerCacheSweepAt {
		t.Fatalf("cache holds %d answers, want at most %d", n, answerCacheSweepAt)
	}
	c.put("k", true, now, -1)
	if _, ok := c.get("k", now); ok {
		t.Fatal("a negative TTL kept an answer")
	}
}
