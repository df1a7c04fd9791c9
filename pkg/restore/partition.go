package restore

import (
	appsv1 "k8s.io/api/apps/v1"
)

// A StatefulSet restored into a cluster that already runs some of its
// pods (a replica moved into a Divided placement's other cluster) must not
// roll those pods: the restore's template change would restart them from
// the new template, and their process state would be lost. The rolling
// update's partition keeps ordinals below it on their revision, so the
// plan sets it to the number of pods that stay (Plan.KeepPods), and the
// restored workload keeps it (keepPartition) for as long as Retain keeps
// the restore.

// needsPartition says whether a plan keeping keep pods sets s's rolling
// update partition: an OnDelete StatefulSet's pods are never rolled by a
// template change, so it needs none.
func needsPartition(s *appsv1.StatefulSet, keep int32) bool {
	return s != nil && keep > 0 && s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType
}

// keepPods raises s's rolling update partition to keep, where it needs one.
func keepPods(s *appsv1.StatefulSet, keep int32) {
	if !needsPartition(s, keep) {
		return
	}
	s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	if s.Spec.UpdateStrategy.RollingUpdate == nil {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
	}
	if p := s.Spec.UpdateStrategy.RollingUpdate.Partition; p == nil || *p < keep {
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &keep
	}
}

// keepPartition gives desired the observed StatefulSet's rolling update
// partition when it is higher: a restore into a cluster that already ran
// pods set it (keepPods), and dropping it when the plan is withdrawn
// would roll those pods onto the restored template. Call it only when
// the restore is kept (keepRestored).
func keepPartition(desired, observed *workload) {
	d, o := desired.statefulSet(), observed.statefulSet()
	if d == nil || o == nil || o.Spec.UpdateStrategy.RollingUpdate == nil || o.Spec.UpdateStrategy.RollingUpdate.Partition == nil {
		return
	}
	keepPods(d, *o.Spec.UpdateStrategy.RollingUpdate.Partition)
}
