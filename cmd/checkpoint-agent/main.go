// Command checkpoint-agent runs on every node of a member cluster and turns
// kubelet checkpoints of that node's pods into OCI checkpoint images.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app"
)

func main() {
	ctx := ctrl.SetupSignalHandler()
	os.Exit(cli.Run(app.NewAgentCommand(ctx)))
}
