// Command kube-apiserver is the upstream kube-apiserver, built from the
// k8s.io/kubernetes module so that tests and local-up need no release download.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
