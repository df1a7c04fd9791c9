package migration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// A move is any replica leaving a cluster, also into a cluster that
// already runs others: a StatefulSet Divided 1:1 over member1 and member2
// whose member1 is evicted runs db-0 (its own, kept) and a new db-1 on
// member2, and db-1 must restore member1's db-0. Pods are therefore known
// by cluster and name (db-0 of two clusters are two pods), and a cluster
// that receives replicas while it runs others is a Receiver: its running
// pods stay as they are, its new pods restore the moved ones.

// PodKey names a pod in a cluster.
type PodKey struct{ Cluster, Pod string }

func (k PodKey) String() string { return k.Cluster + "/" + k.Pod }

// latestByClusterPod is the latest verified Checkpoint of each pod of each
// cluster among cps.
func latestByClusterPod(cps []v1alpha1.Checkpoint) map[PodKey]*v1alpha1.Checkpoint {
	byPod := map[PodKey][]v1alpha1.Checkpoint{}
	for _, cp := range cps {
		k := PodKey{Cluster: cp.Labels[LabelCluster], Pod: cp.Spec.PodName}
		byPod[k] = append(byPod[k], cp)
	}
	out := map[PodKey]*v1alpha1.Checkpoint{}
	for k, list := range byPod {
		if l := LatestVerified(list); l != nil {
			out[k] = l
		}
	}
	return out
}

// RanPods are the pods each cluster ran after since and (unless zero) not
// after until, read from the Checkpoints taken of them (each labelled with
// its cluster). A planned move passes its own start as until: the new
// pods a receiver runs after the move are checkpointed too.
func RanPods(cps []v1alpha1.Checkpoint, since, until time.Time) map[string][]string {
	out := map[string][]string{}
	for _, cp := range cps {
		cl := cp.Labels[LabelCluster]
		at := cp.CreationTimestamp.Time
		if cl == "" || cp.Spec.PodName == "" || !at.After(since) || (!until.IsZero() && at.After(until)) {
			continue
		}
		out[cl] = appendUnique(out[cl], cp.Spec.PodName)
	}
	for cl := range out {
		sortPods(out[cl])
	}
	return out
}

// before is how many pods each cluster ran before m's move (m nil: before
// now). A planned move recorded it when it started (StartReplicas); for
// a detected one it is read from the Checkpoints taken since the
// Migration before it ended and until m was created (the receiver's new
// pods are checkpointed too once they run).
func (c *Controller) before(ctx context.Context, w *workload, m *v1alpha1.Migration, cps []v1alpha1.Checkpoint) (map[string]int32, error) {
	if m != nil && len(m.Status.StartReplicas) > 0 {
		return m.Status.StartReplicas, nil
	}
	ms, err := c.workloadMigrations(ctx, w)
	if err != nil {
		return nil, err
	}
	var prev []v1alpha1.Migration
	var until time.Time
	for _, o := range ms {
		if m == nil || o.Name != m.Name {
			prev = append(prev, o)
		}
	}
	if m != nil {
		until = m.CreationTimestamp.Time
	}
	return PodCounts(RanPods(cps, lastMoveEnd(newest(prev)), until)), nil
}

// PodCounts is how many pods each cluster ran.
func PodCounts(ran map[string][]string) map[string]int32 {
	out := make(map[string]int32, len(ran))
	for cl, pods := range ran {
		out[cl] = int32(len(pods))
	}
	return out
}

// BoundReplicas are the replicas the binding gives each cluster.
func BoundReplicas(rb *workv1alpha2.ResourceBinding) map[string]int32 {
	out := map[string]int32{}
	for _, c := range rb.Spec.Clusters {
		out[c.Name] = c.Replicas
	}
	return out
}

// Receiver is a bound cluster that already ran Kept pods of a StatefulSet
// and is now bound more: NewPods (ordinals Kept and up) are created there
// and restore moved replicas, the Kept pods (ordinals below) stay.
type Receiver struct {
	Cluster string
	Kept    int32
	NewPods []string
}

// Receivers lists the clusters that received replicas of StatefulSet name
// while running others (before: pods each ran before the move; sorted by
// cluster). A cluster that ran nothing is
// not one: it is a plain destination, restored by the general plan.
func Receivers(name string, before, bound map[string]int32, sources []string) []Receiver {
	var out []Receiver
	for cl, replicas := range bound {
		kept := before[cl]
		if kept == 0 || replicas <= kept || contains(sources, cl) {
			continue
		}
		r := Receiver{Cluster: cl, Kept: kept}
		for i := kept; i < replicas; i++ {
			r.NewPods = append(r.NewPods, name+"-"+strconv.Itoa(int(i)))
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	return out
}

// Arrivals are the clusters a move went to: bound clusters that are not
// sources and either ran nothing before (a new cluster) or received
// replicas (Receivers).
func Arrivals(kind, name string, sources []string, before map[string]int32, rb *workv1alpha2.ResourceBinding) []string {
	var out []string
	for _, cl := range BoundClusters(rb) {
		if !contains(sources, cl) && before[cl] == 0 {
			out = append(out, cl)
		}
	}
	if kind == "StatefulSet" {
		for _, r := range Receivers(name, before, BoundReplicas(rb), sources) {
			out = appendUnique(out, r.Cluster)
		}
	}
	sort.Strings(out)
	return out
}

// AssignInto gives each moved checkpoint (sorted by cluster, then pod
// ordinal) the receiver's next new pod; checkpoints beyond its new pods
// are left out (no pod restores them), new pods beyond the checkpoints
// start cold (the pod-restore webhook finds no checkpoint for them).
func AssignInto(moved []v1alpha1.MigrationCheckpoint, r Receiver) []v1alpha1.MigrationCheckpoint {
	sorted := append([]v1alpha1.MigrationCheckpoint(nil), moved...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Cluster != sorted[j].Cluster {
			return sorted[i].Cluster < sorted[j].Cluster
		}
		return podLess(sorted[i].Pod, sorted[j].Pod)
	})
	n := min(len(sorted), len(r.NewPods))
	out := make([]v1alpha1.MigrationCheckpoint, 0, n)
	for i := range n {
		mc := sorted[i]
		mc.Into = r.NewPods[i]
		out = append(out, mc)
	}
	return out
}

// restoresInto is the destination's pod that restores mc.
func restoresInto(mc v1alpha1.MigrationCheckpoint) string {
	if mc.Into != "" {
		return mc.Into
	}
	return mc.Pod
}

// receiverOf is the Receiver a Migration's checkpoints were assigned to,
// nil when they restore into a new cluster by pod name.
func receiverOf(m *v1alpha1.Migration) (cluster string, assigned []v1alpha1.MigrationCheckpoint) {
	for _, mc := range m.Status.Checkpoints {
		if mc.Into != "" {
			assigned = append(assigned, mc)
		}
	}
	if len(assigned) == 0 || m.Status.DestinationCluster == "" {
		return "", nil
	}
	return m.Status.DestinationCluster, assigned
}

// keptPods is how many pods of the receiver stay: its new pods start at
// the lowest ordinal the assignment names.
func keptPods(assigned []v1alpha1.MigrationCheckpoint) (int32, error) {
	kept := int32(-1)
	for _, mc := range assigned {
		o, ok := ordinal(mc.Into)
		if !ok {
			return 0, fmt.Errorf("pod %q of the move is not a StatefulSet pod (name-ordinal)", mc.Into)
		}
		if kept < 0 || int32(o) < kept {
			kept = int32(o)
		}
	}
	return max(kept, 0), nil
}

// ordinal is a StatefulSet pod's ordinal (db-12 -> 12).
func ordinal(pod string) (int, bool) {
	i := strings.LastIndexByte(pod, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(pod[i+1:])
	return n, err == nil && n >= 0
}

// podLess orders pods by ordinal (db-2 before db-10), then by name.
func podLess(a, b string) bool {
	oa, okA := ordinal(a)
	ob, okB := ordinal(b)
	if okA && okB && oa != ob {
		return oa < ob
	}
	return a < b
}

func sortPods(pods []string) {
	sort.Slice(pods, func(i, j int) bool { return podLess(pods[i], pods[j]) })
}
