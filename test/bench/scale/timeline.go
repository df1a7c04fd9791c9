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
	eventsOf := map[string]*corev1.EventList{}
	for _, key := range b.stormNames {
		ns, name, _ := strings.Cut(key, "/")
		if migsOf[ns] == nil {
			migsOf[ns], eventsOf[ns] = &v1alpha1.MigrationList{}, &corev1.EventList{}
			if err := b.env.Karmada.List(ctx, migsOf[ns], client.InNamespace(ns)); err != nil {
				fmt.Fprintf(os.Stderr, "storm timeline: %v\n", err)
				return
			}
			if err := b.env.Karmada.List(ctx, eventsOf[ns], client.InNamespace(ns)); err != nil {
				fmt.Fprintf(os.Stderr, "storm timeline: %v\n", err)
				return
			}
		}
		migs, events := migsOf[ns], eventsOf[ns]
		var m *v1alpha1.Migration
		for i := range migs.Items {
			c := &migs.Items[i]
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
		// The binding's Scheduled condition keeps its time when a
		// reschedule leaves it True: karmada-scheduler's Event tells when.
		var placed *time.Time
		for i := range events.Items {
			e := &events.Items[i]
			at := e.LastTimestamp.Time
			if e.InvolvedObject.Kind == "ResourceBinding" && e.InvolvedObject.Name == name+"-statefulset" &&
				e.Reason == "ScheduleBindingSucceed" && at.After(lostAt) && (placed == nil || at.After(*placed)) {
				placed = &at
			}
		}
		add("scheduled", placed)
	}
	var line []string
	for _, step := range []string{"created", "armed", "scheduled", "restored"} {
		ts := steps[step]
		if len(ts) == 0 {
			line = append(line, step+" none")
			continue
		}
		sort.Float64s(ts)
		line = append(line, fmt.Sprintf("%s %d p50=%.1f max=%.1f", step, len(ts), ts[len(ts)/2], ts[len(ts)-1]))
	}
	fmt.Fprintf(os.Stderr, "storm timeline (s after the loss): %s; Migration phases %v\n", strings.Join(line, ", "), phases)
}
