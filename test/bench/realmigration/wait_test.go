package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPollRetriesErrorsUntilTheCheckHolds(t *testing.T) {
	calls := 0
	err := poll(t.Context(), time.Millisecond, "thing", func(context.Context) (bool, string, error) {
		calls++
		if calls < 3 {
			return false, "", errors.New("not yet")
		}
		return true, "", nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollStopsAtAnAbort(t *testing.T) {
	calls := 0
	err := poll(t.Context(), time.Millisecond, "thing", func(context.Context) (bool, string, error) {
		calls++
		return false, "", abort{errors.New("cold start")}
	})
	if calls != 1 || err == nil || err.Error() != "thing: cold start" {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestPollSaysWhatItSawAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := poll(ctx, time.Millisecond, "thing", func(context.Context) (bool, string, error) {
		return false, "phase Pending", nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "phase Pending") {
		t.Fatalf("err %v", err)
	}
}

func TestMedianTakesEachFieldOnItsOwn(t *testing.T) {
	fs := []floor{{dump: 3, upload: 1}, {dump: 1, upload: 3}, {dump: 2, upload: 2}}
	if d, u := median(fs, func(f floor) float64 { return f.dump }), median(fs, func(f floor) float64 { return f.upload }); d != 2 || u != 2 {
		t.Fatalf("medians dump %v upload %v, want 2 and 2", d, u)
	}
}

// TestPulledInReadsTheKubeletsMessage: the pull's duration comes from the
// kubelet's own words; a message without one gives no match.
func TestPulledInReadsTheKubeletsMessage(t *testing.T) {
	for msg, want := range map[string]string{
		`Successfully pulled image "127.0.0.1:5000/e2e/x@sha256:ab" in 3.946s (3.946s including waiting). Image size: 270886912 bytes.`: "3.946s",
		`Successfully pulled image "r/x:1" in 812ms (812ms including waiting). Image size: 1 bytes.`:                                    "812ms",
		`Successfully pulled image "r/x:1" in 1m2.5s (1m2.5s including waiting). Image size: 1 bytes.`:                                  "1m2.5s",
		`Container image "r/x:1" already present on machine`:                                                                            "",
	} {
		got := ""
		if m := pulledIn.FindStringSubmatch(msg); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", msg, got, want)
		}
	}
}
