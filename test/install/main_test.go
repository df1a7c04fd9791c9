//go:build e2e

// Package install installs stateshift as an operator does, with one helm
// install of charts/stateshift into a Karmada host cluster, from images
// built here (make images), and proves that the installed components alone
// protect and move a workload between real nodes. The local environment runs
// in chart mode (STATESHIFT_LOCAL_MODE=chart): Karmada, two members and a
// host cluster, each with a real kubelet + CRI-O + CRIU node, and no
// stateshift process started by a script.
//
// Run with: go test -tags e2e ./test/install/ -v -timeout 40m
package install

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

var (
	env *framework.Env
	// host is a client of the Karmada host cluster.
	host client.Client
	// images are the image tags built for this run.
	images builtImages
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Chart mode: local-up adds the host cluster and starts no stateshift
	// process; the registry needs credentials, as a real one does.
	_ = os.Setenv("STATESHIFT_LOCAL_MODE", "chart")
	_ = os.Setenv("REGISTRY_AUTH", "1")
	start := time.Now()
	e, err := framework.Setup(ctx)
	if err == nil && e.ProcessRunning("interpreter-webhook") {
		err = fmt.Errorf("a local environment with stateshift running as processes is up in %s: stop it (hack/local-down.sh) first", e.RunDir)
		e.StartedHere = false
	}
	if err == nil {
		host, err = e.Connect(framework.HostCluster)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "install: bring-up failed after %.1fs: %v\n", time.Since(start).Seconds(), err)
		if terr := e.Teardown(); terr != nil {
			fmt.Fprintln(os.Stderr, "install:", terr)
		}
		return 1
	}
	env = e
	fmt.Fprintf(os.Stderr, "PHASE bring-up %.1fs (environment started by this run: %t)\n", e.BringUp.Seconds(), e.StartedHere)
	t0 := time.Now()
	if images, err = buildAndPushImages(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "install: images:", err)
		_ = e.Teardown()
		return 1
	}
	fmt.Fprintf(os.Stderr, "PHASE images %.1fs (%s and %s pushed to %s)\n", time.Since(t0).Seconds(), images.first, images.second, images.registry)
	// From here a signal ends the run at once (the tests do not watch ctx).
	stop()
	code := m.Run()
	if err := e.Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
