package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The real node of each member (hack/local/realnode.sh): a kubelet on its own
// CRI-O, runc and CRIU, tainted and labelled so only workloads that ask for
// it run there.
const (
	RealNodeLabelKey   = "stateshift.io/node-tier"
	RealNodeLabelValue = "real"
)

// RealNodeName is a member's real node.
func RealNodeName(cluster string) string { return cluster + "-real" }

// RealNodeIPs are the loopback addresses the real kubelets serve on.
var RealNodeIPs = map[string]string{Member1: "127.0.0.21", Member2: "127.0.0.22"}

// MemstateImage is the workload whose state lives only in memory
// (test/realnode/memstate): a counter and random bytes whose digest it
// reports; built by local-up into its registry.
func MemstateImage() string { return workloadImage("memstate") }

// RedisImage is Debian's redis-server in a scratch image, built by local-up.
func RedisImage() string { return workloadImage("redis") }

// workloadImage is a test workload image by the digest local-up pushed
// (hack/local/workload-images.sh), so a node never runs an older build
// under the same tag.
func workloadImage(name string) string {
	ref := RegistryHost() + "/stateshift-test/" + name + ":v1"
	if d, err := os.ReadFile(filepath.Join(RunDir(), "workload-images", name+".digest")); err == nil {
		return ref + "@" + strings.TrimSpace(string(d))
	}
	return ref
}

// onRealNode makes a pod template run on the real node of whichever member
// it lands in.
func onRealNode(t *corev1.PodTemplateSpec) {
	t.Spec.NodeSelector = map[string]string{RealNodeLabelKey: RealNodeLabelValue}
	t.Spec.Tolerations = append(t.Spec.Tolerations, corev1.Toleration{
		Key: RealNodeLabelKey, Operator: corev1.TolerationOpEqual, Value: RealNodeLabelValue, Effect: corev1.TaintEffectNoSchedule,
	})
}

// realTemplate is a pod template of one container "main" running image with
// args, on the real node.
func realTemplate(app, image string, args []string, memory string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			Containers: []corev1.Container{{
				Name:  "main",
				Image: image,
				Args:  args,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: *resourceQuantity("10m"), corev1.ResourceMemory: *resourceQuantity(memory),
				}},
			}},
		},
	}
	onRealNode(&t)
	return t
}

// MemstateArgs are memstate's arguments for a state of mib MiB.
func MemstateArgs(mib int) []string {
	return []string{"--mib", fmt.Sprint(mib), "--listen", "127.0.0.1:7070"}
}

// RealDeployment is a one-replica Deployment of image on the real nodes.
func RealDeployment(ns, name, image string, args []string) *appsv1.Deployment {
	d := Deployment(ns, name, 1)
	d.Spec.Template = realTemplate(name, image, args, "32Mi")
	return d
}

// RealStatefulSet is a StatefulSet of image on the real nodes.
func RealStatefulSet(ns, name, image string, args []string, replicas int32) *appsv1.StatefulSet {
	s := StatefulSet(ns, name, replicas)
	s.Spec.Template = realTemplate(name, image, args, "32Mi")
	return s
}

// Exec runs a command in a pod's container with kubectl exec (through the
// member's API server to the real kubelet and CRI-O) and returns its stdout.
//
// A scheduled checkpoint pauses the container for about a second, and
// CRI-O refuses an exec meanwhile ("container is not created or
// running"): that answer is retried for a few seconds.
func (e *Env) Exec(ctx context.Context, cluster, ns, pod, container string, command ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := append([]string{"-n", ns, "exec", pod, "-c", container, "--"}, command...)
	for {
		out, err := e.KubeCtl(ctx, cluster, args...)
		if err == nil || !strings.Contains(err.Error(), "container is not created or running") {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

// MemState is what memstate reports of its memory.
type MemState struct {
	Counter       uint64 `json:"counter"`
	Digest        string `json:"digest"`
	DigestAtStart string `json:"digestAtStart"`
	MiB           int    `json:"mib"`
	PID           int    `json:"pid"`
	StartedUnix   int64  `json:"startedUnix"`
	Note          string `json:"note"`
	// Paused says how often and how long the process did not run (a
	// checkpoint freezes it until the restore).
	Paused struct {
		Count         int   `json:"pauses"`
		LongestMs     int64 `json:"longestPauseMs"`
		LastPauseUnix int64 `json:"lastPauseUnix"`
	} `json:"restoredHint"`
}

// QueryMemState asks a memstate pod for its state.
func (e *Env) QueryMemState(ctx context.Context, cluster, ns, pod string) (MemState, error) {
	return e.queryMemState(ctx, cluster, ns, pod, "query")
}

// QueryMemStateIdentity is QueryMemState without the pass over the memory
// (Digest empty, Intact false): the process's identity and counter only,
// for a clock that stops at the process's first answer.
func (e *Env) QueryMemStateIdentity(ctx context.Context, cluster, ns, pod string) (MemState, error) {
	return e.queryMemState(ctx, cluster, ns, pod, "query", "--no-digest")
}

func (e *Env) queryMemState(ctx context.Context, cluster, ns, pod string, args ...string) (MemState, error) {
	out, err := e.Exec(ctx, cluster, ns, pod, "main", append([]string{"/memstate"}, args...)...)
	if err != nil {
		return MemState{}, err
	}
	var s MemState
	if err := json.Unmarshal([]byte(lastLine(out)), &s); err != nil {
		return MemState{}, fmt.Errorf("memstate query on %s %s/%s: %w (output %q)", cluster, ns, pod, err, out)
	}
	return s, nil
}

// SetMemNote writes a note into a memstate pod's memory.
func (e *Env) SetMemNote(ctx context.Context, cluster, ns, pod, note string) error {
	_, err := e.Exec(ctx, cluster, ns, pod, "main", "/memstate", "set-note", note)
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// LivePod is the name of the only live pod labelled app=app on a member.
func (e *Env) LivePod(ctx context.Context, cluster, ns, app string) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := e.Members[cluster].List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		return nil, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return nil, fmt.Errorf("%d live pods of %s on %s", len(live), app, cluster)
	}
	return &live[0], nil
}

// PrePull makes a member's real node pull image, as an operator's pre-pull
// DaemonSet would: CRI-O restores a checkpoint on top of the image the
// container ran, and never pulls that base image itself.
func (e *Env) PrePull(t testing.TB, cluster, ns, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := e.PrePullContext(ctx, cluster, ns, image); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s pulled on %s: after %.1fs", image, cluster, time.Since(start).Seconds())
}

// PrePullContext is PrePull for callers without a testing.TB (benchmarks):
// a pod running image with /bin/true on the member's real node, created
// once Karmada has propagated the namespace, waited for until it
// succeeds (an error at once when it fails), then deleted.
func (e *Env) PrePullContext(ctx context.Context, cluster, ns, image string) error {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		Containers:                    []corev1.Container{{Name: "pull", Image: image, Command: []string{"/bin/true"}}},
	}}
	onRealNode(&tmpl)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prepull-" + rand.String(5)}, Spec: tmpl.Spec}
	c := e.Members[cluster]
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Delete(dctx, pod)
	}()
	created, saw := false, ""
	for {
		if !created {
			err := c.Create(ctx, pod.DeepCopy())
			created = err == nil || apierrors.IsAlreadyExists(err)
			saw = fmt.Sprintf("create: %v", err)
		}
		got := &corev1.Pod{}
		if created && c.Get(ctx, client.ObjectKeyFromObject(pod), got) == nil {
			saw = fmt.Sprintf("phase=%s %s", got.Status.Phase, containerWaiting(got))
			switch got.Status.Phase {
			case corev1.PodSucceeded:
				return nil
			case corev1.PodFailed:
				return fmt.Errorf("pre-pull of %s on %s failed: %s", image, cluster, saw)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pre-pull of %s on %s: %w; last saw %s", image, cluster, ctx.Err(), saw)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// containerWaiting says why a pod's containers wait, if they do.
func containerWaiting(p *corev1.Pod) string {
	var out []string
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil {
			out = append(out, fmt.Sprintf("%s waiting %s: %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message))
		}
		if s.State.Terminated != nil {
			out = append(out, fmt.Sprintf("%s terminated %s (exit %d): %s", s.Name, s.State.Terminated.Reason, s.State.Terminated.ExitCode, s.State.Terminated.Message))
		}
	}
	return strings.Join(out, "; ")
}
