package migration

import (
	"encoding/json"
	"fmt"
	"strings"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// The policy controllers reconcile a whole CheckpointPolicy, every
// workload it selects, on each event they watch. Karmada writes the
// templates' and bindings' status on every change in a member, and an
// agent moves a Checkpoint through four phases: without these filters a
// policy of n workloads was reconciled O(n) times per round, each time
// for all n. They pass only what a policy controller decides on.

// checkpointSettled passes a Checkpoint that reached its end (Succeeded,
// Failed) or went away; in-between phases change no decision.
var checkpointSettled = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return isSettled(e.Object) },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return isSettled(e.ObjectNew) && !isSettled(e.ObjectOld)
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return true },
}

func isSettled(o any) bool {
	cp, ok := o.(*v1alpha1.Checkpoint)
	return ok && cp.IsFinished()
}

// templateChanged passes a workload template whose spec or labels changed
// (a new pod template, a selection), not Karmada's status updates.
var templateChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})

// bindingChanged passes a ResourceBinding whose placement or whose
// members' applied, health or reflected restore status changed.
var bindingChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			bindingSummary(e.ObjectOld) != bindingSummary(e.ObjectNew)
	},
}

// bindingSummary is what the policy controllers read from a binding's
// status: per cluster, applied, health and stateshift's reflected status.
func bindingSummary(o any) string {
	rb, ok := o.(*workv1alpha2.ResourceBinding)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, s := range rb.Status.AggregatedStatus {
		fmt.Fprintf(&b, "%s:%t:%s:%s;", s.ClusterName, s.Applied, s.Health, reflectedRestore(s))
	}
	return b.String()
}

func reflectedRestore(s workv1alpha2.AggregatedStatusItem) string {
	if s.Status == nil {
		return ""
	}
	var reflected map[string]json.RawMessage
	if json.Unmarshal(s.Status.Raw, &reflected) != nil {
		return string(s.Status.Raw) // not ours to judge: any change passes
	}
	return string(reflected[restore.StatusField])
}
