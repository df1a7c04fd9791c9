package migration

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// BuildPlan turns the latest verified Checkpoint of each pod into a restore
// plan. The plan's checkpoint (the name a restored workload reports as
// restoredFrom) is the first pod's, in name order (ordinal 0 of a
// StatefulSet); its images are the template's default. A StatefulSet's
// plan always lists each checkpointed pod's images (restore.Plan.Pods):
// the member's pod-restore webhook gives every pod its own and starts a pod
// without a checkpoint cold, even when only one pod has one (otherwise every
// replica would restore that pod's state). A Deployment's pods have random
// names, so every replica restores the newest pod checkpoint.
func BuildPlan(kind string, latest map[string]*v1alpha1.Checkpoint) (restore.Plan, error) {
	pods := make([]string, 0, len(latest))
	for pod, c := range latest {
		if c != nil {
			pods = append(pods, pod)
		}
	}
	if len(pods) == 0 {
		return restore.Plan{}, fmt.Errorf("no verified checkpoint")
	}
	sort.Strings(pods)
	first := latest[pods[0]]
	if kind == "Deployment" {
		for _, pod := range pods[1:] {
			if completedAt(latest[pod]) > completedAt(first) {
				first = latest[pod]
			}
		}
	}
	p := restore.Plan{Checkpoint: first.Name, Containers: images(first), SourceImages: sourceImages(first)}
	if kind == "StatefulSet" {
		p.Pods = map[string]map[string]string{}
		for _, pod := range pods {
			p.Pods[pod] = images(latest[pod])
		}
	}
	return p, p.Validate()
}

func images(c *v1alpha1.Checkpoint) map[string]string {
	m := make(map[string]string, len(c.Status.Containers))
	for _, cc := range c.Status.Containers {
		m[cc.Name] = cc.Image
	}
	return m
}

// PlanCheckpoints lists the Checkpoints a plan uses (for a Migration), by
// cluster, then pod ordinal.
func PlanCheckpoints(latest map[PodKey]*v1alpha1.Checkpoint) []v1alpha1.MigrationCheckpoint {
	out := make([]v1alpha1.MigrationCheckpoint, 0, len(latest))
	for _, k := range sortedPodKeys(latest) {
		cp := latest[k]
		out = append(out, v1alpha1.MigrationCheckpoint{Name: cp.Name, Pod: k.Pod, Cluster: k.Cluster, Images: images(cp)})
	}
	return out
}

// GeneralTargets says which pod of a cluster that runs nothing of the
// workload restores each checkpoint (the plan BuildPlan makes). A
// workload that ran in one cluster restores pod by pod name. A
// StatefulSet that ran in several (Divided: a db-0 in each) restores
// them, by cluster and ordinal, into ordinals 0, 1, ...: no two pods
// restore one pod's state, and no pod's state is dropped for another's
// of the same name. A Deployment's pods all restore the newest one.
func GeneralTargets(kind, name string, latest map[PodKey]*v1alpha1.Checkpoint) map[string]*v1alpha1.Checkpoint {
	keys := sortedPodKeys(latest)
	clusters := map[string]bool{}
	for _, k := range keys {
		clusters[k.Cluster] = true
	}
	out := make(map[string]*v1alpha1.Checkpoint, len(keys))
	for i, k := range keys {
		switch {
		case kind == "StatefulSet" && len(clusters) > 1:
			out[name+"-"+strconv.Itoa(i)] = latest[k]
		case kind == "StatefulSet":
			out[k.Pod] = latest[k]
		default:
			out[k.String()] = latest[k]
		}
	}
	return out
}

// ReceiverTargets are the receiver's new pods and the checkpoints they
// restore.
func ReceiverTargets(assigned []v1alpha1.MigrationCheckpoint, byKey map[PodKey]*v1alpha1.Checkpoint) map[string]*v1alpha1.Checkpoint {
	out := make(map[string]*v1alpha1.Checkpoint, len(assigned))
	for _, mc := range assigned {
		if cp := byKey[PodKey{Cluster: mc.Cluster, Pod: mc.Pod}]; cp != nil {
			out[mc.Into] = cp
		}
	}
	return out
}

func sortedPodKeys(latest map[PodKey]*v1alpha1.Checkpoint) []PodKey {
	keys := make([]PodKey, 0, len(latest))
	for k, cp := range latest {
		if cp != nil {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Cluster != keys[j].Cluster {
			return keys[i].Cluster < keys[j].Cluster
		}
		return podLess(keys[i].Pod, keys[j].Pod)
	})
	return keys
}

// ExcludeClusters is the exclude list of the restore OverridePolicy: every
// cluster bound to the workload that was excluded before (a cluster never
// stops being excluded while it runs the workload, so a running copy is
// never rewritten), plus every bound cluster whose copy is settled (applied
// and healthy). A newly scheduled destination is NOT excluded until its
// copy is healthy: the plan must still target it while Karmada writes and
// re-syncs its Work; once it is healthy the plan is withdrawn from it and
// Retain keeps the restored pods. Clusters no longer bound drop out, so a
// later move back to them restores too. unable lists clusters that cannot
// restore (label stateshift.io/restore=false): they are excluded always.
func ExcludeClusters(bound []string, settled, previous, unable map[string]bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(c string) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, c := range bound {
		if previous[c] || settled[c] {
			add(c)
		}
	}
	for c := range unable {
		if unable[c] {
			add(c)
		}
	}
	if len(out) == 0 {
		// Mid-move: the source left the binding and the destination is
		// not healthy yet. The plan must stay armed for the destination;
		// excluding the former clusters (no longer bound) rewrites no
		// running copy, and an OverridePolicy needs a non-empty exclude.
		for c := range previous {
			if previous[c] {
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}

// BoundClusters are the clusters a binding places the workload on.
func BoundClusters(rb *workv1alpha2.ResourceBinding) []string {
	out := make([]string, 0, len(rb.Spec.Clusters))
	for _, c := range rb.Spec.Clusters {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

// SettledClusters are the bound clusters whose copy is applied and healthy.
func SettledClusters(rb *workv1alpha2.ResourceBinding) map[string]bool {
	bound := map[string]bool{}
	for _, c := range rb.Spec.Clusters {
		bound[c.Name] = true
	}
	out := map[string]bool{}
	for _, s := range rb.Status.AggregatedStatus {
		if bound[s.ClusterName] && s.Applied && s.Health == workv1alpha2.ResourceHealthy {
			out[s.ClusterName] = true
		}
	}
	return out
}

// DestinationState is what a destination's reflected status says.
type DestinationState struct {
	// Healthy: applied and InterpretHealth said Healthy.
	Healthy bool
	// RestoredFrom is the checkpoint its workload says it was restored from.
	RestoredFrom string
	// Reported: the binding has a status entry for the cluster.
	Reported bool
}

// Destination reads cluster's entry of rb.status.aggregatedStatus.
func Destination(rb *workv1alpha2.ResourceBinding, cluster string) DestinationState {
	for _, s := range rb.Status.AggregatedStatus {
		if s.ClusterName != cluster {
			continue
		}
		st := DestinationState{Reported: true, Healthy: s.Applied && s.Health == workv1alpha2.ResourceHealthy}
		if s.Status != nil && len(s.Status.Raw) > 0 {
			var reflected map[string]json.RawMessage
			if json.Unmarshal(s.Status.Raw, &reflected) == nil {
				var ms restore.MigrationStatus
				if raw, ok := reflected[restore.StatusField]; ok && json.Unmarshal(raw, &ms) == nil {
					st.RestoredFrom = ValidCheckpointName(ms.RestoredFrom)
				}
			}
		}
		return st
	}
	return DestinationState{}
}
