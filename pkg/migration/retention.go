package migration

import (
	"sort"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// completedAt orders Checkpoints: completion time, then creation time.
func completedAt(c *v1alpha1.Checkpoint) int64 {
	if c.Status.CompletionTime != nil {
		return c.Status.CompletionTime.UnixNano()
	}
	return c.CreationTimestamp.UnixNano()
}

// newestFirst sorts a pod's Checkpoints newest first. API times have a
// resolution of one second, so ties are common: a Migration's fresh
// checkpoint wins a tie against a scheduled one (it was asked for because
// a move is coming), then the name breaks ties so the order is stable.
func newestFirst(cps []v1alpha1.Checkpoint) {
	sort.SliceStable(cps, func(i, j int) bool { return newer(&cps[i], &cps[j]) })
}

// newer orders two Checkpoints as newestFirst does.
func newer(a, b *v1alpha1.Checkpoint) bool {
	ta, tb := completedAt(a), completedAt(b)
	if ta != tb {
		return ta > tb
	}
	fa, fb := a.Labels[LabelMigration] != "", b.Labels[LabelMigration] != ""
	if fa != fb {
		return fa
	}
	return a.Name > b.Name
}

// Prune splits one pod's Checkpoints into those to keep and those to
// delete: the keep newest Succeeded ones stay; older Succeeded ones go;
// a Failed one goes once a newer Succeeded one exists (it told its story);
// unfinished ones always stay (the agent is working on them). A Checkpoint a
// running Migration uses (inUse) is never deleted.
func Prune(cps []v1alpha1.Checkpoint, keep int, inUse map[string]bool) (kept, deleted []v1alpha1.Checkpoint) {
	if keep < 1 {
		keep = 1
	}
	sorted := append([]v1alpha1.Checkpoint(nil), cps...)
	newestFirst(sorted)
	succeeded := 0
	for _, c := range sorted {
		switch {
		case inUse[c.Name] || !c.IsFinished():
			kept = append(kept, c)
		case c.Status.Phase == v1alpha1.CheckpointSucceeded:
			succeeded++
			if succeeded <= keep {
				kept = append(kept, c)
			} else {
				deleted = append(deleted, c)
			}
		default: // Failed
			if succeeded > 0 {
				deleted = append(deleted, c)
			} else {
				kept = append(kept, c)
			}
		}
	}
	return kept, deleted
}

// LatestVerified is the newest Succeeded Checkpoint with at least one
// image, or nil.
func LatestVerified(cps []v1alpha1.Checkpoint) *v1alpha1.Checkpoint {
	sorted := append([]v1alpha1.Checkpoint(nil), cps...)
	newestFirst(sorted)
	for i := range sorted {
		if sorted[i].Status.Phase == v1alpha1.CheckpointSucceeded && len(sorted[i].Status.Containers) > 0 {
			return &sorted[i]
		}
	}
	return nil
}

// InProgress says whether one of the Checkpoints is not finished yet.
func InProgress(cps []v1alpha1.Checkpoint) bool {
	for i := range cps {
		if !cps[i].IsFinished() {
			return true
		}
	}
	return false
}
