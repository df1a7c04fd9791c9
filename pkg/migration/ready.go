package migration

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// setReady derives a Migration's Ready condition from its phase, the one
// place that does: True once Restored, False with the phase as reason
// otherwise (FellBack and Failed included: the state did not move), so
// `kubectl wait --for=condition=Ready migration/x` waits for a restored
// move. Called where the migrations controller writes the status.
func setReady(m *v1alpha1.Migration) {
	phase := m.Status.Phase
	if phase == "" {
		phase = v1alpha1.MigrationPending
	}
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: string(phase),
		Message: m.Status.Message, ObservedGeneration: m.Generation}
	if phase == v1alpha1.MigrationRestored {
		c.Status = metav1.ConditionTrue
	}
	if c.Message == "" {
		c.Message = "the move is " + string(phase)
	}
	meta.SetStatusCondition(&m.Status.Conditions, c)
}
