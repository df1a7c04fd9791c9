package nodesim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
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
	// review counts one kind of review and answers it, or fails when the
	// test says the API server is down.
	review := func(resource string, count *int, answer func() runtime.Object) {
		cs.PrependReactor("create", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
			*count++
			if f.fail {
				return true, nil, errors.New("connection refused")
			}
			return true, answer(), nil
		})
	}
	review("tokenreviews", &f.tokenReviews, func() runtime.Object {
		tr := &authenticationv1.TokenReview{}
		tr.Status.Authenticated = f.authenticated
		tr.Status.User = authenticationv1.UserInfo{Username: "system:serviceaccount:stateshift-system:checkpoint-agent"}
		return tr
	})
	review("subjectaccessreviews", &f.accessReviews, func() runtime.Object {
		sar := &authorizationv1.SubjectAccessReview{}
		sar.Status.Allowed = f.allowed
		return sar
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
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	a := newKubeletAuth(f.client(), "node-1",
		AuthCacheTTLs{Token: 10 * time.Second, Allowed: 10 * time.Second, Denied: 5 * time.Second}, clk)

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
	clk.Step(10 * time.Second)
	f.allowed = false
	if ok, _ := a.authorize(ctx, u, "create", "checkpoint"); ok {
		t.Fatal("an expired allowed answer was used after the TTL")
	}
	f.allowed = true
	clk.Step(4 * time.Second)
	if ok, _ := a.authorize(ctx, u, "create", "checkpoint"); ok {
		t.Fatal("a denial was not kept for the denied TTL")
	}
	clk.Step(time.Second)
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

// TestAuthCacheStaysBounded checks that the caches do not grow with the
// number of callers over the node's life: expired answers are dropped, and
// a TTL that is not positive keeps nothing.
func TestAuthCacheStaysBounded(t *testing.T) {
	ctx := context.Background()
	f := &fakeReviewer{authenticated: true, allowed: true}
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	a := newKubeletAuth(f.client(), "node-1", AuthCacheTTLs{Token: time.Second, Allowed: -1, Denied: -1}, clk)
	for i := 0; i < 10000; i++ {
		if _, err := a.authenticate(ctx, bearer(fmt.Sprintf("token-%d", i))); err != nil {
			t.Fatal(err)
		}
		clk.Step(10 * time.Millisecond)
	}
	// One second holds 100 answers.
	if n := a.tokens.Len(); n > 101 {
		t.Fatalf("token cache holds %d answers after 10000 callers, want at most 101", n)
	}
	u, _ := a.authenticate(ctx, bearer("token-0"))
	for i := 0; i < 2; i++ {
		if _, err := a.authorize(ctx, u, "create", "checkpoint"); err != nil {
			t.Fatal(err)
		}
	}
	if a.access.Len() != 0 || f.accessReviews != 2 {
		t.Fatalf("a negative TTL kept an answer: %d kept, %d SubjectAccessReviews", a.access.Len(), f.accessReviews)
	}
}
