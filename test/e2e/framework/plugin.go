package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginErr  error
)

// RemovePluginBuild deletes the kubectl-stateshift binary built for this
// run (TestMain calls it at the end; a leftover is ~50 MB per run in /tmp).
func RemovePluginBuild() {
	if pluginDir != "" {
		_ = os.RemoveAll(pluginDir)
	}
}

// KubectlStateshift runs `kubectl stateshift args...` as an operator does
// (the kubectl-stateshift binary, built once per run, on PATH) against the
// Karmada API with kubeconfig, and returns its standard output; both
// streams go to the test log.
func (e *Env) KubectlStateshift(t testing.TB, kubeconfig string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	pluginOnce.Do(func() {
		pluginDir, pluginErr = os.MkdirTemp("", "stateshift-plugin-")
		if pluginErr == nil {
			build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "kubectl-stateshift"), "./cmd/kubectl-stateshift")
			build.Dir = Root()
			if out, err := build.CombinedOutput(); err != nil {
				pluginErr = fmt.Errorf("build kubectl-stateshift: %w: %s", err, out)
			}
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Kubectl, append([]string{"stateshift", "--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+pluginDir+":"+filepath.Dir(e.Kubectl)+":"+os.Getenv("PATH"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("kubectl stateshift %s\n%s%s", strings.Join(args, " "), out, stderr.String())
	if err != nil {
		return string(out), fmt.Errorf("kubectl stateshift %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
