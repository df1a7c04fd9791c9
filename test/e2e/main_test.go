//go:build e2e

// Package e2e runs stateshift's end-to-end tests against a real Karmada
// control plane with two real member clusters and simulated nodes, brought
// up by hack/local-up.sh (or an environment already running in the same run
// folder). Run with: go test -tags e2e ./test/e2e/ -v -timeout 30m
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// env is the environment every test uses.
var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	e, err := framework.Setup(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: bring-up failed after %.1fs: %v\n", time.Since(start).Seconds(), err)
		for _, c := range e.Components() {
			fmt.Fprintf(os.Stderr, "----- last 20 lines of %s\n%s\n", c, e.LogTail(c, 20))
		}
		if terr := e.Teardown(); terr != nil {
			fmt.Fprintln(os.Stderr, "e2e:", terr)
		}
		return 1
	}
	env = e
	fmt.Fprintf(os.Stderr, "PHASE bring-up %.1fs (environment started by this run: %t, run folder %s)\n",
		e.BringUp.Seconds(), e.StartedHere, e.RunDir)
	code := m.Run()
	framework.RemovePluginBuild()
	if err := e.Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
