package agent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app"
	"github.com/stateshift/stateshift/cmd/checkpoint-agent/app/options"
	"github.com/stateshift/stateshift/pkg/agent"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/testenv"
)

// TestRestoredAgain runs the agent (app.Run, as its ServiceAccount bound by
// artifacts/agent/rbac.yaml) against a real kube-apiserver with no kubelet:
// the test writes the pods' container statuses itself, as a kubelet whose
// restored container restarts in place would. Every new restart of a
// restored container gets one Warning Event on the pod; nothing else does.
func TestRestoredAgain(t *testing.T) {
	const (
		node       = "restart-node"
		original   = "docker.io/library/redis:7.4"
		checkpoint = "shop-db-7f3k2"
		cpImage    = "registry.example:5000/stateshift/shop-db@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	env := testenv.Start(t)
	f := &fixture{env: env, cs: kubernetes.NewForConfigOrDie(env.Config), tokenDir: t.TempDir()}
	env.Namespace(t, agentNS)
	env.Namespace(t, appNS)
	applyYAML(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "agent", "rbac.yaml"))
	before := restoredAgainMetric(t)
	startRestartAgent(t, f, node)

	restoredAnnotations := map[string]string{
		restore.AnnotationRestoredFrom:   checkpoint,
		restore.AnnotationOriginalImages: fmt.Sprintf(`{"db":%q}`, original),
	}
	mkPod := func(name, nodeName string, annotations map[string]string, dbImage string) *corev1.Pod {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: appNS, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{
				{Name: "db", Image: dbImage},
				// Not restored (not in original-images): its restarts are ordinary.
				{Name: "log", Image: "docker.io/library/busybox:1.37"},
			}},
		}
		must(t, env.Client.Create(t.Context(), pod))
		return pod
	}
	// setRestarts writes the pod's container statuses as the kubelet would.
	setRestarts := func(pod *corev1.Pod, db, log int32, ready bool) {
		t.Helper()
		got := &corev1.Pod{}
		must(t, env.Client.Get(t.Context(), client.ObjectKeyFromObject(pod), got))
		now := metav1.Now()
		status := func(name, image string, restarts int32) corev1.ContainerStatus {
			return corev1.ContainerStatus{Name: name, Image: image, RestartCount: restarts, Ready: ready, Started: ptr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}
		}
		got.Status.Phase = corev1.PodRunning
		got.Status.ContainerStatuses = []corev1.ContainerStatus{
			status("db", got.Spec.Containers[0].Image, db),
			status("log", got.Spec.Containers[1].Image, log),
		}
		must(t, env.Client.Status().Update(t.Context(), got))
	}

	restored := mkPod("restored", node, restoredAnnotations, cpImage)
	plain := mkPod("plain", node, nil, original)
	// Restored annotations, but the container runs its original image (a
	// cold start): a restart starts it from that image, nothing to say.
	cold := mkPod("cold", node, restoredAnnotations, original)
	// Another node's pod: this agent never sees it.
	elsewhere := mkPod("elsewhere", "other-node", restoredAnnotations, cpImage)

	setRestarts(restored, 0, 0, true)
	setRestarts(plain, 3, 0, true)
	setRestarts(cold, 3, 0, true)
	setRestarts(elsewhere, 1, 0, true)
	time.Sleep(2 * time.Second)
	for _, p := range []*corev1.Pod{restored, plain, cold, elsewhere} {
		if evs := restoredAgainEvents(t, f, p.Name); len(evs) != 0 {
			t.Errorf("pod %s: %d %s Event(s) before any restart of a restored container: %+v", p.Name, len(evs), agent.ReasonRestoredAgain, evs)
		}
	}

	// The first restart: exactly one Event, and the sidecar's restarts
	// (not restored) add nothing.
	setRestarts(restored, 1, 4, true)
	wantNotes(t, f, restored, "restart 1")
	ev := restoredAgainEvents(t, f, restored.Name)[0]
	wantNote := "container db restarted in place (restart 1): the runtime restores checkpoint " + checkpoint + " again from " + cpImage +
		", bringing back that checkpoint's state; delete the pod to start it from the template's image"
	if ev.Type != corev1.EventTypeWarning || ev.Note != wantNote || ev.Regarding.Kind != "Pod" || ev.Regarding.UID != restored.UID ||
		ev.Regarding.FieldPath != "spec.containers{db}" || ev.ReportingController != "checkpoint-agent" {
		t.Errorf("Event %+v\nwant a Warning regarding pod %s (uid %s, spec.containers{db}) by checkpoint-agent, note\n%s", ev, restored.Name, restored.UID, wantNote)
	}

	// The status changes again, the restart count does not: no new Event.
	setRestarts(restored, 1, 4, false)
	time.Sleep(2 * time.Second)
	wantNotes(t, f, restored, "restart 1")

	// The second restart: a second Event.
	setRestarts(restored, 2, 4, true)
	wantNotes(t, f, restored, "restart 1", "restart 2")

	// The other pods still have none (their statuses were handled long ago).
	for _, p := range []*corev1.Pod{plain, cold, elsewhere} {
		if evs := restoredAgainEvents(t, f, p.Name); len(evs) != 0 {
			t.Errorf("pod %s: %d %s Event(s), want none: %+v", p.Name, len(evs), agent.ReasonRestoredAgain, evs)
		}
	}
	if got := restoredAgainMetric(t) - before; got != 2 {
		t.Errorf("stateshift_agent_restored_again_total grew by %v, want 2", got)
	}
}

// wantNotes waits until the pod's CheckpointRestoredAgain Events are exactly
// one per given restart (each Event once: no series), then checks that they
// stay so for a moment.
func wantNotes(t *testing.T, f *fixture, pod *corev1.Pod, restarts ...string) {
	t.Helper()
	check := func() error {
		evs := restoredAgainEvents(t, f, pod.Name)
		var notes []string
		for _, e := range evs {
			if e.Series != nil {
				return fmt.Errorf("event %s was emitted %d times", e.Name, e.Series.Count)
			}
			notes = append(notes, e.Note)
		}
		if len(evs) != len(restarts) {
			return fmt.Errorf("pod %s has %d %s Event(s), want %d: %q", pod.Name, len(evs), agent.ReasonRestoredAgain, len(restarts), notes)
		}
		for _, r := range restarts {
			n := 0
			for _, note := range notes {
				if strings.Contains(note, "("+r+")") {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("pod %s: %d Events for %s, want 1: %q", pod.Name, n, r, notes)
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, check)
	time.Sleep(time.Second)
	must(t, check())
}

func restoredAgainEvents(t *testing.T, f *fixture, podName string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	must(t, f.env.Client.List(t.Context(), list, client.InNamespace(appNS)))
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Pod" && e.Regarding.Name == podName && e.Reason == agent.ReasonRestoredAgain {
			out = append(out, e)
		}
	}
	return out
}

func restoredAgainMetric(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	for _, mf := range families {
		if mf.GetName() == "stateshift_agent_restored_again_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("stateshift_agent_restored_again_total is not registered")
	return 0
}

// startRestartAgent runs app.Run for node with no kubelet behind it: the
// test needs only its pod watch and its Events.
func startRestartAgent(t *testing.T, f *fixture, node string) {
	t.Helper()
	work := t.TempDir()
	o := options.New()
	o.NodeName, o.Namespace, o.Kubeconfig = node, agentNS, f.kubeconfigFor(t, "stateshift-checkpoint-agent")
	o.TokenFile, o.CheckpointDir = f.tokenFile(t, "stateshift-checkpoint-agent"), filepath.Join(work, "checkpoints")
	o.WorkDir = filepath.Join(work, "work")
	o.BuildahRoot, o.BuildahRunRoot = filepath.Join(work, "buildah", "root"), filepath.Join(work, "buildah", "runroot")
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	must(t, o.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent for %s: %v", node, err)
		}
	})
}
