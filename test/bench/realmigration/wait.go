package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// abort ends a poll at once: what it waits for can no longer happen.
type abort struct{ error }

func (a abort) Unwrap() error { return a.error }

// poll runs check every interval until it holds or ctx ends. An error
// counts as "not yet" (API servers and controllers settle) unless it is an
// abort; on timeout the error holds what the check saw last.
func poll(ctx context.Context, interval time.Duration, what string, check framework.Check) error {
	var saw string
	var lastErr error
	for {
		ok, s, err := check(ctx)
		var a abort
		if errors.As(err, &a) {
			return fmt.Errorf("%s: %w", what, a.error)
		}
		if err == nil && ok {
			return nil
		}
		if s != "" {
			saw = s
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last saw: %s; last error: %v", what, ctx.Err(), saw, lastErr)
		case <-time.After(interval):
		}
	}
}

// prePull makes a member's real node pull image, as an operator's pre-pull
// DaemonSet would: CRI-O restores a checkpoint on top of the image the
// container ran and never pulls that base image itself. (framework.PrePull
// does the same for tests, with a testing.TB.)
func prePull(ctx context.Context, env *framework.Env, cluster, ns, image string) error {
	// The real node's selector and toleration come from the framework's template.
	spec := framework.RealDeployment(ns, "prepull", image, nil).Spec.Template.Spec
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	spec.Containers[0].Command = []string{"/bin/true"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prepull-" + rand.String(5)}, Spec: spec}
	c := env.Members[cluster]
	// Karmada propagates the namespace to the member shortly after its
	// creation: until then the create fails.
	if err := poll(ctx, 500*time.Millisecond, "create the pre-pull pod on "+cluster, func(ctx context.Context) (bool, string, error) {
		err := c.Create(ctx, pod.DeepCopy())
		return err == nil || apierrors.IsAlreadyExists(err), "", err
	}); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Delete(ctx, pod)
	}()
	return poll(ctx, 500*time.Millisecond, image+" pulled on "+cluster, func(ctx context.Context) (bool, string, error) {
		got := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			return false, "", err
		}
		saw := fmt.Sprintf("phase %s, containers %+v", got.Status.Phase, got.Status.ContainerStatuses)
		if got.Status.Phase == corev1.PodFailed {
			return false, saw, abort{fmt.Errorf("pre-pull pod %s/%s failed: %s", ns, pod.Name, saw)}
		}
		return got.Status.Phase == corev1.PodSucceeded, saw, nil
	})
}
