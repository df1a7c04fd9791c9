package interpreter

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

type aggregateStatusInterpreter func(obj *unstructured.Unstructured, items []workv1alpha2.AggregatedStatusItem) (*unstructured.Unstructured, error)

// aggregateStatusInterpreters: the workloads aggregate as in Karmada (its
// typed decoding ignores the stateshift block of each item, which stays
// readable per cluster in rb.status.aggregatedStatus).
var aggregateStatusInterpreters = map[schema.GroupVersionKind]aggregateStatusInterpreter{
	statefulSetGVK: karmada.AggregateStatus,
	deploymentGVK:  karmada.AggregateStatus,
	checkpointGVK:  aggregateCheckpointStatus,
}

// phaseRank orders phases by how far a Checkpoint got; a usable copy
// (Succeeded) outranks a failed one.
var phaseRank = map[stateshiftv1alpha1.CheckpointPhase]int{
	"":                                   0,
	stateshiftv1alpha1.CheckpointPending: 1,
	stateshiftv1alpha1.CheckpointCheckpointing: 2,
	stateshiftv1alpha1.CheckpointPushing:       3,
	stateshiftv1alpha1.CheckpointFailed:        4,
	stateshiftv1alpha1.CheckpointSucceeded:     5,
}

// aggregateCheckpointStatus folds the members' statuses into the
// Checkpoint in the Karmada API. A Checkpoint is normally propagated to one
// cluster, the one running the pod: its status is taken as is, the message
// prefixed with the cluster. With no reported status the Checkpoint is left
// unchanged. With several, the most advanced phase wins (ties: the first
// cluster by name) and the message lists the others' phases.
func aggregateCheckpointStatus(obj *unstructured.Unstructured, items []workv1alpha2.AggregatedStatusItem) (*unstructured.Unstructured, error) {
	type reported struct {
		cluster string
		status  stateshiftv1alpha1.CheckpointStatus
	}
	var all []reported
	for _, item := range items {
		if item.Status == nil || len(item.Status.Raw) == 0 {
			continue
		}
		var s stateshiftv1alpha1.CheckpointStatus
		if err := json.Unmarshal(item.Status.Raw, &s); err != nil {
			return nil, fmt.Errorf("checkpoint %s/%s: status from cluster %s: %w", obj.GetNamespace(), obj.GetName(), item.ClusterName, err)
		}
		if equality.Semantic.DeepEqual(s, stateshiftv1alpha1.CheckpointStatus{}) {
			continue // reflected before the agent wrote anything
		}
		all = append(all, reported{cluster: item.ClusterName, status: s})
	}
	if len(all) == 0 {
		return obj, nil
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].cluster < all[j].cluster })
	best := 0
	for i := range all {
		if phaseRank[all[i].status.Phase] > phaseRank[all[best].status.Phase] {
			best = i
		}
	}
	status := all[best].status.ReportedBy(all[best].cluster)
	message := status.Message
	if len(all) > 1 {
		var others []string
		for i, r := range all {
			if i != best {
				others = append(others, fmt.Sprintf("%s=%s", r.cluster, phaseOrNone(r.status.Phase)))
			}
		}
		message += " (also reported by " + strings.Join(others, ", ") + ")"
	}
	status.Message = message

	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&status)
	if err != nil {
		return nil, err
	}
	out := obj.DeepCopy()
	if err := unstructured.SetNestedField(out.Object, m, "status"); err != nil {
		return nil, err
	}
	return out, nil
}

func phaseOrNone(p stateshiftv1alpha1.CheckpointPhase) string {
	if p == "" {
		return "none"
	}
	return string(p)
}
