// Command nodesim runs one simulated Kubernetes node (kubelet and CRI-O-like
// runtime) against a real API server; see package
// github.com/stateshift/stateshift/test/nodesim.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/stateshift/stateshift/test/nodesim/cmd/nodesim/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(app.Main(ctx, os.Args[1:], os.Stderr))
}
