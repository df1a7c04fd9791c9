package migration

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// ReasonDeadlineExceeded: a phase of the Migration outlived spec.phaseTimeout.
const ReasonDeadlineExceeded = "DeadlineExceeded"

// PhaseDeadline is when the Migration's current phase must have ended;
// zero before the first phase.
func PhaseDeadline(m *v1alpha1.Migration) time.Time {
	began := m.Status.PhaseTime
	if began == nil {
		began = m.Status.StartTime
	}
	if began == nil || m.Status.Phase == "" || m.Status.Phase == v1alpha1.MigrationPending {
		return time.Time{}
	}
	return began.Add(m.Spec.PhaseTimeoutOrDefault())
}

// deadlineLeft is how long the current phase may still run (the timeout
// itself before the first phase).
func (r MigrationReconciler) deadlineLeft(m *v1alpha1.Migration) time.Duration {
	d := PhaseDeadline(m)
	if d.IsZero() {
		return m.Spec.PhaseTimeoutOrDefault()
	}
	return d.Sub(r.now())
}

// deadlineExceeded ends a phase that outlived its deadline: the hold is
// lifted and the policy's fallback applies. ColdStart lets a person's move
// go ahead from the image and ends a restore that did not happen in time
// FellBack; Hold, and a cordon, end Failed with the workload left where
// Karmada keeps it (it may now fail it over: the armed plan restores from
// the latest scheduled checkpoint).
func (r MigrationReconciler) deadlineExceeded(ctx context.Context, mv *move) (ctrl.Result, error) {
	m := mv.m
	phase := m.Status.Phase
	msg := fmt.Sprintf("phase %s did not end within %s", phase, m.Spec.PhaseTimeoutOrDefault())
	deadlinesExceeded.WithLabelValues(string(m.Spec.Trigger), string(phase)).Inc()
	r.condition(m, v1alpha1.ConditionDeadlineExceeded, true, ReasonDeadlineExceeded, msg)
	r.Recorder.Eventf(m, corev1.EventTypeWarning, ReasonDeadlineExceeded, "%s", msg)
	coldStart := mv.p.OnRestoreImpossibleOrDefault() == v1alpha1.RestoreImpossibleColdStart
	if phase == v1alpha1.MigrationRestoring || (coldStart && m.Spec.Trigger == v1alpha1.TriggerManual) {
		return r.impossible(ctx, mv, ReasonDeadlineExceeded, msg, false)
	}
	if err := r.release(ctx, mv.rb, m.Name); err != nil {
		return ctrl.Result{}, err
	}
	r.Recorder.Eventf(mv.w.obj, corev1.EventTypeWarning, ReasonDeadlineExceeded, "Migration %s: %s: scheduling resumed", m.Name, msg)
	return ctrl.Result{}, r.fail(m, ReasonDeadlineExceeded, msg+": scheduling resumed; the workload stays where Karmada keeps it")
}
