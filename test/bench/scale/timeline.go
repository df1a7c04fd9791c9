package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// stormTimeline prints, for the storm's workloads, when each step of
// their moves happened after the loss (median and largest): the
// Migration's creation (move detection), its checkpoints armed,
// karmada-scheduler's placement of the binding on another cluster, and
// the Migration's Restored; and the Migrations' phases now. It is what
// says which step a slow storm waits on, from the objects' own times.
func (b *bench) stormTimeline(ctx context.Context, lostAt time.Time) {
	steps := map[string][]float64{}
	phases := map[v1alpha1.MigrationPhase]int{}
	add := func(step string, t *time.Time) {
		if t != nil && !t.IsZero() {
			steps[step] = append(steps[step], t.Sub(lostAt).Seconds())
		}
	}
	// Each namespace's Migrations and Events are read once.
	migsOf := map[string]*v1alpha1.MigrationList{}
	placedOf := map[string]map[string]time.Time{}
	for _, key := range b.stormNames {
		ns, name, _ := strings.Cut(key, "/")
		if migsOf[ns] == nil {
			migs, placed, err := b.namespaceMoves(ctx, ns, lostAt)
			if err != nil {
				fmt.Fprintf(os.Stderr, "storm timeline: %v\n", err)
				return
			}
			migsOf[ns], placedOf[ns] = migs, placed
		}
		var m *v1alpha1.Migration
		for i := range migsOf[ns].Items {
			c := &migsOf[ns].Items[i]
			if c.Spec.WorkloadRef.Name == name && !c.CreationTimestamp.Time.Before(lostAt.Add(-time.Second)) {
				m = c
			}
		}
		if m == nil {
			phases["(none)"]++
		} else {
			phases[m.Status.Phase]++
			add("created", &m.CreationTimestamp.Time)
			if m.Status.ArmedTime != nil {
				add("armed", &m.Status.ArmedTime.Time)
			}
			if m.Status.RestoredTime != nil {
				add("restored", &m.Status.RestoredTime.Time)
			}
		}
		if at, ok := placedOf[ns][name+"-statefulset"]; ok {
			add("scheduled", &at)
		}
	}
	var line []string
	for _, step := range []string{"created", "armed", "scheduled", "restored"} {
		ts := steps[step]
		if len(ts) == 0 {
			line = append(line, step+" none")
			continue
		}
		p50, largest := p50AndMax(ts)
		line = append(line, fmt.Sprintf("%s %d p50=%.1f max=%.1f", step, len(ts), p50, largest))
	}
	fmt.Fprintf(os.Stderr, "storm timeline (s after the loss): %s; Migration phases %v\n", strings.Join(line, ", "), phases)
}

// namespaceMoves reads a namespace's Migrations, and when
// karmada-scheduler last placed each of its ResourceBindings after the
// loss. The binding's Scheduled condition keeps its time when a reschedule
// leaves it True: the scheduler's ScheduleBindingSucceed Event tells when.
func (b *bench) namespaceMoves(ctx context.Context, ns string, lostAt time.Time) (*v1alpha1.MigrationList, map[string]time.Time, error) {
	migs := &v1alpha1.MigrationList{}
	if err := b.env.Karmada.List(ctx, migs, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	var events corev1.EventList
	if err := b.env.Karmada.List(ctx, &events, client.InNamespace(ns)); err != nil {
		return nil, nil, err
	}
	placed := map[string]time.Time{}
	for _, e := range events.Items {
		at := e.LastTimestamp.Time
		if e.InvolvedObject.Kind == "ResourceBinding" && e.Reason == "ScheduleBindingSucceed" &&
			at.After(lostAt) && at.After(placed[e.InvolvedObject.Name]) {
			placed[e.InvolvedObject.Name] = at
		}
	}
	return migs, placed, nil
}

// p50AndMax are the median and the largest of ts (not empty); ts is sorted.
func p50AndMax(ts []float64) (p50, largest float64) {
	sort.Float64s(ts)
	return ts[len(ts)/2], ts[len(ts)-1]
}
