package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// abort ends a poll at once: what it waits for can no longer happen.
type abort struct{ error }

func (a abort) Unwrap() error { return a.error }

// poll runs check every interval until it holds or ctx ends. An error
// counts as "not yet" (API servers and controllers settle) unless it is an
// abort; on timeout the error holds what the check saw last.
func poll(ctx context.Context, interval time.Duration, what string, check framework.Check) error {
	var saw string
	var lastErr error
	for {
		ok, s, err := check(ctx)
		var a abort
		if errors.As(err, &a) {
			return fmt.Errorf("%s: %w", what, a.error)
		}
		if err == nil && ok {
			return nil
		}
		if s != "" {
			saw = s
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last saw: %s; last error: %v", what, ctx.Err(), saw, lastErr)
		case <-time.After(interval):
		}
	}
}
