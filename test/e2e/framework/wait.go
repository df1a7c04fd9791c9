package framework

import (
	"context"
	"testing"
	"time"
)

// PollInterval is how often Eventually and Consistently check.
const PollInterval = time.Second

// Check reports whether a condition holds and, either way, a short
// description of what it saw, used in failure messages. An error counts as
// "not yet" (API servers and controllers settle), and is reported on timeout.
type Check func(ctx context.Context) (ok bool, saw string, err error)

// Eventually polls check until it holds; after timeout it fails the test
// with what it saw last.
func Eventually(t testing.TB, timeout time.Duration, what string, check Check) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	var saw string
	var lastErr error
	for {
		ok, s, err := check(ctx)
		if err == nil && ok {
			t.Logf("%s: after %.1fs (%s)", what, time.Since(start).Seconds(), s)
			return
		}
		saw, lastErr = s, err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not true after %s; last saw: %s; last error: %v", what, timeout, saw, lastErr)
		case <-time.After(PollInterval):
		}
	}
}

// Consistently checks for the whole duration that check holds, failing the
// test at the first time it does not.
func Consistently(t testing.TB, duration time.Duration, what string, check Check) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), duration+30*time.Second)
	defer cancel()
	end := time.Now().Add(duration)
	var saw string
	for time.Now().Before(end) {
		ok, s, err := check(ctx)
		if err != nil {
			t.Fatalf("%s: check failed: %v (saw: %s)", what, err, s)
		}
		if !ok {
			t.Fatalf("%s: stopped being true: %s", what, s)
		}
		saw = s
		time.Sleep(PollInterval)
	}
	t.Logf("%s: held for %s (%s)", what, duration, saw)
}

// Phase logs how long the calling test (or subtest) took, when it ends.
func Phase(t testing.TB) {
	start := time.Now()
	t.Cleanup(func() {
		status := "ok"
		if t.Failed() {
			status = "FAILED"
		}
		t.Logf("PHASE %s %s %.1fs", t.Name(), status, time.Since(start).Seconds())
	})
}
