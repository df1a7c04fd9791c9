package agent

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestCheckpointsForAnotherNodeAreNotReconciled: the controller labels a
// Checkpoint with its pod's node; other nodes' agents neither reconcile it
// nor read its pod. A person's Checkpoint (no label) reaches every agent.
func TestCheckpointsForAnotherNodeAreNotReconciled(t *testing.T) {
	r := &Reconciler{NodeName: "n1"}
	p := r.notForOtherNode()
	cp := func(node string) *v1alpha1.Checkpoint {
		c := &v1alpha1.Checkpoint{}
		if node != "" {
			c.Labels = map[string]string{v1alpha1.LabelNode: node}
		}
		return c
	}
	for node, want := range map[string]bool{"n1": true, "n2": false, "": true} {
		if got := p.Create(event.CreateEvent{Object: cp(node)}); got != want {
			t.Errorf("label %q: reconciled %t, want %t", node, got, want)
		}
		if got := forOtherNode(cp(node), "n1"); got == want {
			t.Errorf("label %q: forOtherNode %t", node, got)
		}
	}
}
