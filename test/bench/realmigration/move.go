package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

const app = "mem"

// move is one timed move of the memstate process from member1's real node
// to member2's.
type move struct {
	// total: the Migration's creation to the restored process's answer.
	total float64
	// checkpoint and image: the fresh Checkpoint's status.timings.
	checkpoint, image float64
	// restore: the restored pod's creation on member2, as a watch of
	// member2's API server saw it, to the restored process's first answer.
	restore float64
	// reportedRunning: the same creation to the watch's first sight of the
	// container running (the kubelet's report, after its relist); -1 when
	// the watch did not see it.
	reportedRunning float64
	// pull is the kubelet's pull of the checkpoint image, from its Pulled
	// event; restore - pull is the rest: the sandbox, CRI-O's copy of the
	// checkpoint out of the mounted image and CRIU's restore.
	pull float64
	// archiveMiB is the size of the kubelet's checkpoint archive.
	archiveMiB float64
	// counterBefore and counterAfter: the process's counter just before
	// the Migration and in its first answer on member2.
	counterBefore, counterAfter uint64
}

// other is the time neither the checkpoint, the image nor the restore
// account for: stateshift's and Karmada's reactions, the scheduling, the
// answer to the query.
func (m move) other() float64 { return m.total - m.checkpoint - m.image - m.restore }

// moveOnce runs a memstate Deployment holding o.MiB on member1's real node,
// protects it, moves it with a person's Migration and times the move.
func moveOnce(ctx context.Context, env *framework.Env, o *Options, i int) (res move, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.RunTimeout)
	defer cancel()
	ns := fmt.Sprintf("bench-realmig-%d-%s", i+1, rand.String(4))
	k := env.Karmada
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	defer cleanup(env, ns)

	image := framework.MemstateImage()
	deploy := framework.RealDeployment(ns, app, image, framework.MemstateArgs(o.MiB))
	// The state, plus the Go runtime and the query's reading of it.
	deploy.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse(fmt.Sprintf("%dMi", o.MiB+o.MiB/8+16))
	if err := env.PrePullContext(ctx, framework.Member2, ns, image); err != nil {
		return res, err
	}
	// member2 cordoned while the Deployment is scheduled: it lands on member1.
	if _, err := env.KarmadaCtl(ctx, "cordon", framework.Member2); err != nil {
		return res, err
	}
	gvk := deploy.GetObjectKind().GroupVersionKind()
	if err := k.Create(ctx, deploy); err != nil {
		return res, err
	}
	deploy.GetObjectKind().SetGroupVersionKind(gvk) // Create decodes the answer without it
	if err := k.Create(ctx, framework.PropagationPolicy(ns, "place", framework.Members, deploy)); err != nil {
		return res, err
	}
	if err := poll(ctx, time.Second, "running on member1", env.PodsRunning(framework.Member1, ns, app, 1)); err != nil {
		return res, err
	}
	if _, err := env.KarmadaCtl(ctx, "uncordon", framework.Member2); err != nil {
		return res, err
	}
	src, err := env.LivePod(ctx, framework.Member1, ns, app)
	if err != nil {
		return res, err
	}
	if src.Spec.NodeName != framework.RealNodeName(framework.Member1) {
		return res, fmt.Errorf("%s/%s runs on %s, not on member1's real node", ns, src.Name, src.Spec.NodeName)
	}
	if err := poll(ctx, time.Second, "memstate answers on member1", func(ctx context.Context) (bool, string, error) {
		st, err := env.QueryMemState(ctx, framework.Member1, ns, src.Name)
		return err == nil && st.Digest == st.DigestAtStart, fmt.Sprintf("%+v", st), err
	}); err != nil {
		return res, err
	}

	// A long schedule: the one checkpoint that counts is the move's fresh one.
	policy := framework.CheckpointPolicy(ns, "protect", 30*time.Minute, "", deploy)
	policy.Spec.Builder = v1alpha1.BuilderNative
	policy.Spec.Compression = v1alpha1.LayerCompressionNone
	if err := k.Create(ctx, policy); err != nil {
		return res, err
	}
	if err := poll(ctx, time.Second, "restore armed", armed(env, ns, policy.Name)); err != nil {
		return res, err
	}
	before, err := env.QueryMemState(ctx, framework.Member1, ns, src.Name)
	if err != nil {
		return res, err
	}
	clock, err := watchPods(ctx, env, framework.Member2, ns)
	if err != nil {
		return res, err
	}
	defer clock.stop()

	mig := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "to-member2"},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "Deployment", Name: app},
			DestinationCluster: framework.Member2, Trigger: v1alpha1.TriggerManual,
		},
	}
	start := time.Now()
	if err := k.Create(ctx, mig); err != nil {
		return res, err
	}
	// The clock stops at the restored process's first answer, with its
	// identity and counter, asked as soon as the new pod is on member2's
	// node; the pass over its 256 MiB that proves the memory unchanged
	// comes after, untimed (it is the probe's cost, not the move's: the
	// floor's restore is not timed with it either).
	var dst *corev1.Pod
	var after framework.MemState
	var answered time.Time
	if err := poll(ctx, 100*time.Millisecond, "the restored process answers on member2's real node", func(ctx context.Context) (bool, string, error) {
		p, err := env.LivePod(ctx, framework.Member2, ns, app)
		if err != nil {
			return false, "", err
		}
		img := p.Spec.Containers[0].Image
		if !strings.HasPrefix(img, policy.Spec.Repository+"@") {
			return false, "", abort{fmt.Errorf("%s/%s on member2 runs %s, not a checkpoint image of %s", ns, p.Name, img, policy.Spec.Repository)}
		}
		if p.Spec.NodeName != framework.RealNodeName(framework.Member2) {
			return false, fmt.Sprintf("%s on %q", p.Name, p.Spec.NodeName), nil
		}
		st, err := queryOnce(ctx, env, framework.Member2, ns, p.Name)
		if err != nil {
			return false, p.Name + " does not answer yet", err
		}
		if err := sameProcess(before, st); err != nil {
			return false, "", abort{err}
		}
		dst, after, answered = p, st, time.Now()
		return true, "", nil
	}); err != nil {
		return res, fmt.Errorf("%w (migration: %s)", err, migrationState(ctx, env, ns, mig.Name))
	}
	res.total = time.Since(start).Seconds()
	res.counterBefore, res.counterAfter = before.Counter, after.Counter
	verified, err := env.QueryMemState(ctx, framework.Member2, ns, dst.Name)
	if err != nil {
		return res, fmt.Errorf("the restored process's memory digest: %w", err)
	}
	if err := sameProcess(before, verified); err != nil {
		return res, err
	}
	if verified.Digest != verified.DigestAtStart {
		return res, fmt.Errorf("the restored process's memory changed: digest %s, at start %s", verified.Digest, verified.DigestAtStart)
	}

	cp, err := freshCheckpoint(ctx, env, ns, mig.Name, start)
	if err != nil {
		return res, err
	}
	t := cp.Status.Timings
	if t.Checkpoint == nil || t.Image == nil {
		return res, fmt.Errorf("checkpoint %s has no timings: %+v", cp.Name, t)
	}
	res.checkpoint, res.image = t.Checkpoint.Seconds(), t.Image.Seconds()
	res.archiveMiB = float64(cp.Status.ArchiveBytes) / (1 << 20)

	res.pull = pullSeconds(ctx, env, ns, dst.Name)
	added, running := clock.seen(dst.UID)
	res.reportedRunning = -1
	if !added.IsZero() && !running.IsZero() {
		res.reportedRunning = running.Sub(added).Seconds()
	}
	if added.IsZero() {
		fmt.Fprintf(os.Stderr, "  run %d: the watch of member2 missed %s/%s; restore_s is from its creation timestamp (whole seconds)\n", i+1, ns, dst.Name)
		added = dst.CreationTimestamp.Time
	}
	res.restore = answered.Sub(added).Seconds()
	return res, nil
}

// pulledIn is the duration in a kubelet Pulled event's message:
// `Successfully pulled image "x" in 3.946s (3.946s including waiting)...`.
var pulledIn = regexp.MustCompile(` in ([0-9.]+(?:ms|s|m[0-9.]+s)) \(`)

// pullSeconds is how long member2's kubelet took to pull pod's image, from
// its Pulled event; -1 when the event is not there (an image already
// present has none with a duration).
func pullSeconds(ctx context.Context, env *framework.Env, ns, pod string) float64 {
	var events corev1.EventList
	if err := env.Members[framework.Member2].List(ctx, &events, client.InNamespace(ns)); err != nil {
		return -1
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name != pod || e.Reason != "Pulled" {
			continue
		}
		if m := pulledIn.FindStringSubmatch(e.Message); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				return d.Seconds()
			}
		}
	}
	return -1
}

// sameProcess says why st is not the process before described (member1's,
// just before the Migration), if it is not.
func sameProcess(before, st framework.MemState) error {
	if st.StartedUnix != before.StartedUnix || st.DigestAtStart != before.DigestAtStart {
		return fmt.Errorf("member2 runs another process (started %d, memory %s), not the one of member1 (started %d, memory %s): a cold start",
			st.StartedUnix, st.DigestAtStart, before.StartedUnix, before.DigestAtStart)
	}
	if st.Counter < before.Counter {
		return fmt.Errorf("the restored process's counter is %d, it was %d before the Migration", st.Counter, before.Counter)
	}
	return nil
}

// armed checks that the policy's one workload has its restore armed.
func armed(env *framework.Env, ns, policy string) framework.Check {
	return func(ctx context.Context) (bool, string, error) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy}, p); err != nil {
			return false, "", err
		}
		for _, w := range p.Status.Workloads {
			if w.Name == app {
				return w.Armed, fmt.Sprintf("armed=%t checkpoint=%s message=%q", w.Armed, w.ArmedCheckpoint, w.Message), nil
			}
		}
		return false, fmt.Sprintf("status %+v", p.Status), nil
	}
}

// freshCheckpoint is the Checkpoint the Migration took and restored from;
// it must be newer than the Migration (not the scheduled one).
func freshCheckpoint(ctx context.Context, env *framework.Env, ns, migration string, start time.Time) (*v1alpha1.Checkpoint, error) {
	m := &v1alpha1.Migration{}
	if err := poll(ctx, 200*time.Millisecond, "the Migration names its checkpoint", func(ctx context.Context) (bool, string, error) {
		if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration}, m); err != nil {
			return false, "", err
		}
		return len(m.Status.Checkpoints) > 0, fmt.Sprintf("phase %s checkpoints %v", m.Status.Phase, m.Status.Checkpoints), nil
	}); err != nil {
		return nil, err
	}
	if len(m.Status.Checkpoints) != 1 {
		return nil, fmt.Errorf("migration %s has %d checkpoints, want 1", migration, len(m.Status.Checkpoints))
	}
	cp := &v1alpha1.Checkpoint{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: m.Status.Checkpoints[0].Name}, cp); err != nil {
		return nil, err
	}
	// creationTimestamp has whole seconds.
	if cp.CreationTimestamp.Time.Before(start.Truncate(time.Second)) {
		return nil, fmt.Errorf("migration %s restored from checkpoint %s, created %s before the Migration: not a fresh one",
			migration, cp.Name, start.Sub(cp.CreationTimestamp.Time).Round(time.Second))
	}
	return cp, nil
}

// migrationState is a Migration's phase and message, for an error.
func migrationState(ctx context.Context, env *framework.Env, ns, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	m := &v1alpha1.Migration{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("phase %s: %s", m.Status.Phase, m.Status.Message)
}

// podClock records when a watch of a member's pods first saw each pod and
// first saw its container running: a finer clock than the pods' own
// timestamps, which have whole seconds.
type podClock struct {
	mu             sync.Mutex
	added, running map[types.UID]time.Time
	stop           func()
}

func watchPods(ctx context.Context, env *framework.Env, cluster, ns string) (*podClock, error) {
	wc, err := client.NewWithWatch(env.MemberConfigs[cluster], client.Options{Scheme: framework.Scheme()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch pods of %s in %s: %w", cluster, ns, err)
	}
	c := &podClock{added: map[types.UID]time.Time{}, running: map[types.UID]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			now := time.Now()
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			c.mu.Lock()
			if _, ok := c.added[p.UID]; !ok {
				c.added[p.UID] = now
			}
			if _, ok := c.running[p.UID]; !ok && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil {
				c.running[p.UID] = now
			}
			c.mu.Unlock()
		}
	}()
	c.stop = func() {
		w.Stop()
		cancel()
		<-done
	}
	return c, nil
}

// seen says when the watch first saw a pod and its container running
// (zero when it did not).
func (c *podClock) seen(uid types.UID) (added, running time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.added[uid], c.running[uid]
}

// cleanup deletes the namespace, waiting until it is gone from Karmada and
// the members, and leaves member2 uncordoned; it says on stderr what it
// could not restore.
func cleanup(env *framework.Env, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := env.KarmadaCtl(ctx, "uncordon", framework.Member2); err != nil {
		fmt.Fprintf(os.Stderr, "  cleanup: %v\n", err)
	}
	if err := env.Karmada.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "  cleanup: delete namespace %s: %v\n", ns, err)
	}
	clients := map[string]client.Client{"karmada": env.Karmada}
	for _, m := range framework.Members {
		clients[m] = env.Members[m]
	}
	for name, c := range clients {
		for {
			err := c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
			if apierrors.IsNotFound(err) {
				break
			}
			if ctx.Err() != nil {
				fmt.Fprintf(os.Stderr, "  cleanup: namespace %s is still in %s\n", ns, name)
				break
			}
			time.Sleep(time.Second)
		}
	}
	if t := taints(ctx, env); t != "" {
		fmt.Fprintf(os.Stderr, "  cleanup: members left tainted: %s\n", t)
	}
}

// taints lists the members' taints ("" when there are none).
func taints(ctx context.Context, env *framework.Env) string {
	var out []string
	for _, m := range framework.Members {
		c, err := env.Cluster(ctx, m)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", m, err))
			continue
		}
		if t := framework.TaintStrings(c); len(t) > 0 {
			out = append(out, fmt.Sprintf("%s %v", m, t))
		}
	}
	return strings.Join(out, "; ")
}
