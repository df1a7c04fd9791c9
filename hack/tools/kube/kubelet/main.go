// Command kubelet is the upstream kubelet at the same version as the API
// servers: the real node of local-up and the TestRealRuntime tests runs it
// beside CRI-O, so checkpoints go through the kubelet's own checkpoint API.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
