package migration

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// transitions lists the phases each phase may move to. A move only goes
// forward; terminal phases (Restored, FellBack, Failed) go nowhere.
var transitions = map[v1alpha1.MigrationPhase][]v1alpha1.MigrationPhase{
	"":                              {v1alpha1.MigrationPending, v1alpha1.MigrationCheckpointing, v1alpha1.MigrationRestoring, v1alpha1.MigrationFellBack, v1alpha1.MigrationFailed},
	v1alpha1.MigrationPending:       {v1alpha1.MigrationCheckpointing, v1alpha1.MigrationRestoring, v1alpha1.MigrationFellBack, v1alpha1.MigrationFailed},
	v1alpha1.MigrationCheckpointing: {v1alpha1.MigrationArmed, v1alpha1.MigrationFellBack, v1alpha1.MigrationFailed},
	v1alpha1.MigrationArmed:         {v1alpha1.MigrationRestoring, v1alpha1.MigrationFellBack, v1alpha1.MigrationFailed},
	v1alpha1.MigrationRestoring:     {v1alpha1.MigrationRestored, v1alpha1.MigrationFellBack, v1alpha1.MigrationFailed},
}

// CanMove says whether a Migration may go from one phase to another.
func CanMove(from, to v1alpha1.MigrationPhase) bool {
	for _, p := range transitions[from] {
		if p == to {
			return true
		}
	}
	return false
}

// SetPhase moves the status to phase at now and records the timings: the
// start on the first phase, armedTime on Armed, restoredTime on Restored,
// completionTime and the durations on a terminal phase. An illegal move is
// an error and leaves the status untouched.
func SetPhase(s *v1alpha1.MigrationStatus, phase v1alpha1.MigrationPhase, now time.Time, message string) error {
	if s.Phase == phase {
		s.Message = message
		return nil
	}
	if !CanMove(s.Phase, phase) {
		return fmt.Errorf("migration cannot go from %q to %q", s.Phase, phase)
	}
	t := metav1.NewTime(now)
	if s.StartTime == nil {
		s.StartTime = &t
	}
	s.Phase = phase
	s.PhaseTime = &t
	s.Message = message
	switch phase {
	case v1alpha1.MigrationArmed:
		s.ArmedTime = &t
		s.Durations.Checkpoint = &metav1.Duration{Duration: now.Sub(s.StartTime.Time).Round(time.Millisecond)}
	case v1alpha1.MigrationRestored:
		s.RestoredTime = &t
		from := s.StartTime.Time
		if s.ArmedTime != nil {
			from = s.ArmedTime.Time
		}
		s.Durations.Restore = &metav1.Duration{Duration: now.Sub(from).Round(time.Millisecond)}
	}
	if phase == v1alpha1.MigrationRestored || phase == v1alpha1.MigrationFellBack || phase == v1alpha1.MigrationFailed {
		s.CompletionTime = &t
		s.Durations.Total = &metav1.Duration{Duration: now.Sub(s.StartTime.Time).Round(time.Millisecond)}
	}
	return nil
}
