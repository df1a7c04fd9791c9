package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

const (
	groupLabel = "stateshift-bench/group"
	// stormGroup workloads may run on both members and start on member1;
	// steadyGroup ones run on member2 only.
	stormGroup  = "storm"
	steadyGroup = "steady"
	setupWait   = 15 * time.Minute
	// createWorkers bounds the concurrent creates, so the Karmada API
	// server's flow control never rejects them.
	createWorkers = 8
)

type bench struct {
	env *framework.Env
	c   config
	// names holds "<namespace>/<name>" of every workload, storm the storm
	// group's.
	names, stormNames []string
	// checkpoints reads the benchmark's Checkpoints from a watch: polling
	// with a list of every namespace every few seconds made Karmada's API
	// server serialize ~200 Checkpoints per namespace and poll (0.22 of
	// its 6.9 requests a checkpoint, at 245 ms each), load the benchmark
	// itself put on what it measures.
	checkpoints client.Reader
}

func (b *bench) namespace(i int) string { return fmt.Sprintf("bench-scale-%02d", i) }

// checkRoom refuses to start when a running environment's nodes cannot
// hold the pods (it was started without NODESIM_PODS).
func (b *bench) checkRoom(ctx context.Context) error {
	need := map[string]int{framework.Member1: b.c.storm, framework.Member2: b.c.workloads}
	for m, n := range need {
		var nodes corev1.NodeList
		if err := b.env.Members[m].List(ctx, &nodes); err != nil {
			return err
		}
		room := int64(0)
		for _, node := range nodes.Items {
			if node.Spec.Unschedulable {
				continue
			}
			room += node.Status.Allocatable.Pods().Value()
		}
		if room < int64(n+20) {
			return fmt.Errorf("%s's nodes hold %d pods, the benchmark needs %d: make local-down, then run it again (it starts the environment with NODESIM_PODS=%d)",
				m, room, n+20, b.c.workloads+100)
		}
	}
	return nil
}

// deploy creates the namespaces, PropagationPolicies and workloads, the
// storm group first (member2 cordoned meanwhile, so they land on member1),
// and waits until every pod runs.
func (b *bench) deploy(ctx context.Context) error {
	start := time.Now()
	var stormObjs, steadyObjs []client.Object
	for i := 0; i < b.c.namespaces; i++ {
		ns := b.namespace(i)
		if err := b.env.Karmada.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		stormObjs = append(stormObjs, placement(ns, stormGroup, framework.Members))
		steadyObjs = append(steadyObjs, placement(ns, steadyGroup, []string{framework.Member2}))
	}
	for i := 0; i < b.c.workloads; i++ {
		ns, name := b.namespace(i%b.c.namespaces), fmt.Sprintf("db-%04d", i)
		group := steadyGroup
		if i < b.c.storm {
			group = stormGroup
			b.stormNames = append(b.stormNames, ns+"/"+name)
		}
		b.names = append(b.names, ns+"/"+name)
		if group == stormGroup {
			stormObjs = append(stormObjs, b.statefulSet(ns, name, group))
		} else {
			steadyObjs = append(steadyObjs, b.statefulSet(ns, name, group))
		}
	}
	if len(b.stormNames) > 0 {
		if err := b.karmadactl(ctx, "cordon", framework.Member2); err != nil {
			return err
		}
		if err := b.createAll(ctx, stormObjs); err != nil {
			return err
		}
		if err := b.waitRunning(ctx, framework.Member1, len(b.stormNames)); err != nil {
			return err
		}
		if err := b.karmadactl(ctx, "uncordon", framework.Member2); err != nil {
			return err
		}
	}
	if err := b.createAll(ctx, steadyObjs); err != nil {
		return err
	}
	if err := b.waitRunning(ctx, framework.Member2, b.c.workloads-len(b.stormNames)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "deployed %d workloads (%d on member1) in %.0fs\n", b.c.workloads, len(b.stormNames), time.Since(start).Seconds())
	return nil
}

func placement(ns, group string, clusters []string) *policyv1alpha1.PropagationPolicy {
	pp := framework.PropagationPolicy(ns, group, clusters)
	pp.Spec.ResourceSelectors = []policyv1alpha1.ResourceSelector{{
		APIVersion: "apps/v1", Kind: "StatefulSet",
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{groupLabel: group}},
	}}
	return pp
}

func (b *bench) statefulSet(ns, name, group string) *appsv1.StatefulSet {
	sts := framework.StatefulSet(ns, name, 1)
	sts.Labels = map[string]string{groupLabel: group}
	framework.WithState(sts, b.c.stateBytes)
	// A simulated pod does no work: 1m of CPU lets a thousand of them fit
	// one simulated node (8 cpu); the framework's 10m stopped the
	// 1,000-workload run at 800 pods (Insufficient cpu).
	for i := range sts.Spec.Template.Spec.Containers {
		sts.Spec.Template.Spec.Containers[i].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1m")
	}
	return sts
}

// policy protects every StatefulSet of a namespace.
func (b *bench) policy(ns string) *v1alpha1.CheckpointPolicy {
	p := framework.CheckpointPolicy(ns, "protect", b.c.interval, "")
	p.Spec.ResourceSelectors = []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet"}}
	p.Spec.Retention.Keep = 2
	return p
}

// createAll creates objects in the Karmada API with a few workers.
func (b *bench) createAll(ctx context.Context, objs []client.Object) error {
	work := make(chan client.Object)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Go(func() {
			for o := range work {
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := b.env.Karmada.Create(cctx, o)
				cancel()
				if err != nil && !apierrors.IsAlreadyExists(err) {
					errs <- fmt.Errorf("create %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when there was none
}

// waitRunning waits until a member runs at least n pods of the benchmark.
func (b *bench) waitRunning(ctx context.Context, cluster string, n int) error {
	return poll(ctx, setupWait, 5*time.Second, fmt.Sprintf("%d bench pods Running on %s", n, cluster), func(ctx context.Context) (bool, string, error) {
		running, err := b.runningPods(ctx, cluster)
		return running >= n, fmt.Sprintf("%d running", running), err
	})
}

func (b *bench) runningPods(ctx context.Context, cluster string) (int, error) {
	running := 0
	for i := 0; i < b.c.namespaces; i++ {
		var pods corev1.PodList
		if err := b.env.Members[cluster].List(ctx, &pods, client.InNamespace(b.namespace(i))); err != nil {
			return 0, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
	}
	return running, nil
}

func (b *bench) karmadactl(ctx context.Context, args ...string) error {
	out, err := b.env.KarmadaCtl(ctx, args...)
	if err != nil {
		return fmt.Errorf("karmadactl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// cleanup deletes the namespaces (Karmada deletes their members' copies)
// and lifts what the storm left on member1.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_ = b.karmadactl(ctx, "uncordon", framework.Member2)
	for i := 0; i < b.c.namespaces; i++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.namespace(i)}}
		if err := b.env.Karmada.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
	if b.env.StartedHere {
		if err := b.env.Teardown(); err != nil {
			fmt.Fprintln(os.Stderr, "teardown:", err)
		}
	}
}

// poll runs check every `every` until it holds, fails or the deadline
// passes; the error says what the last check saw.
func poll(ctx context.Context, timeout, every time.Duration, what string, check func(context.Context) (bool, string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		ok, seen, err := check(cctx)
		ccancel()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			seen = err.Error()
		}
		last = seen
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s (last: %s)", what, timeout, last)
		case <-time.After(every):
		}
	}
}
