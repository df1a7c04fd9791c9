// Command interpreter-webhook serves stateshift's Karmada resource
// interpreter: Karmada calls it to interpret StatefulSets, Deployments and
// Checkpoints (see pkg/interpreter).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app"
)

func main() {
	ctx := ctrl.SetupSignalHandler()
	os.Exit(cli.Run(app.NewInterpreterWebhookCommand(ctx)))
}
