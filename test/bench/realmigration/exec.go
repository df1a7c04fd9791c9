package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// queryOnce asks a memstate pod for its identity once, through the member
// API server's exec endpoint from this process (no kubectl to start, no
// retry): the timed wait polls it as soon as the restored pod is on the
// node, so the clock stops at the process's first answer, not at the
// kubelet's next report of the container as running (its 1 s relist).
func queryOnce(ctx context.Context, env *framework.Env, cluster, ns, pod string) (framework.MemState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := env.MemberConfigs[cluster]
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return framework.MemState{}, err
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "main", Command: []string{"/memstate", "query", "--no-digest"},
			Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return framework.MemState{}, err
	}
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return framework.MemState{}, fmt.Errorf("exec in %s %s/%s: %w (%s)", cluster, ns, pod, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var st framework.MemState
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &st); err != nil {
		return st, fmt.Errorf("memstate query on %s %s/%s: %w (output %q)", cluster, ns, pod, err, stdout.String())
	}
	return st, nil
}
