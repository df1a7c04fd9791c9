package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
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
		case !c.IsFinished():
			kept = append(kept, c)
		case c.Status.Phase == v1alpha1.CheckpointSucceeded:
			// An in-use one counts towards keep (it is usually the newest:
			// the armed plan's), so keep bounds what stays.
			succeeded++
			if succeeded <= keep || inUse[c.Name] {
				kept = append(kept, c)
			} else {
				deleted = append(deleted, c)
			}
		case inUse[c.Name] || succeeded == 0: // Failed
			kept = append(kept, c)
		default:
			deleted = append(deleted, c)
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

// Due says how long until the pod's next scheduled checkpoint: 0 means
// now. Nothing is due while one is in progress; the newest finished one
// (Succeeded or Failed, so a failing pod is retried once per interval, not
// in a hot loop) starts the interval.
func Due(cps []v1alpha1.Checkpoint, interval time.Duration, now time.Time) time.Duration {
	if InProgress(cps) {
		return interval
	}
	newest := newestCheckpointTime(cps)
	if newest.IsZero() {
		return 0
	}
	return max(0, newest.Add(interval).Sub(now))
}

// newestCheckpointTime is when the newest of cps completed (or was created,
// when it has not completed); zero for none.
func newestCheckpointTime(cps []v1alpha1.Checkpoint) time.Time {
	var newest time.Time
	for i := range cps {
		t := cps[i].CreationTimestamp.Time
		if cps[i].Status.CompletionTime != nil {
			t = cps[i].Status.CompletionTime.Time
		}
		if t.After(newest) {
			newest = t
		}
	}
	return newest
}

func onCluster(cps []v1alpha1.Checkpoint, cluster string) []v1alpha1.Checkpoint {
	return filterCheckpoints(cps, func(c *v1alpha1.Checkpoint) bool { return c.Labels[LabelCluster] == cluster })
}

// filterCheckpoints keeps the Checkpoints keep accepts.
func filterCheckpoints(cps []v1alpha1.Checkpoint, keep func(*v1alpha1.Checkpoint) bool) []v1alpha1.Checkpoint {
	var out []v1alpha1.Checkpoint
	for i := range cps {
		if keep(&cps[i]) {
			out = append(out, cps[i])
		}
	}
	return out
}

// keychain reads the policy's registry credentials from the controller's
// namespace, uncached (see Controller.Secrets); without them the registry
// is used anonymously.
func (c *Controller) keychain(ctx context.Context, p *v1alpha1.CheckpointPolicy) authn.Keychain {
	return c.keychainOf(ctx, p.Spec.CredentialsSecretRef, p)
}

// keychainOf reads the registry credentials ref names (an Event on about
// says why they cannot be read).
func (c *Controller) keychainOf(ctx context.Context, ref *v1alpha1.SecretReference, about client.Object) authn.Keychain {
	if ref == nil {
		return nil
	}
	s := &corev1.Secret{}
	key := client.ObjectKey{Namespace: c.Options.SecretNamespace, Name: ref.Name}
	if err := c.getSecret(ctx, key, s); err != nil {
		c.Recorder.Eventf(about, corev1.EventTypeWarning, "CredentialsUnavailable", "registry credentials %s: %v", key, err)
		return nil
	}
	cfg, err := registryauth.Parse(s)
	if err == nil {
		err = registryauth.AllowsNamespace(s, about.GetNamespace(), false) // bound to its namespaces
	}
	if err != nil {
		c.Recorder.Eventf(about, corev1.EventTypeWarning, "CredentialsUnavailable", "registry credentials %s: %v", key, err)
		return nil
	}
	return cfg.Keychain()
}

// getSecret reads a Secret through c.Secrets, never through the cached
// client, which would need list and watch on every Secret of the cluster.
func (c *Controller) getSecret(ctx context.Context, key client.ObjectKey, s *corev1.Secret) error {
	if c.Secrets == nil {
		return fmt.Errorf("no uncached reader for Secrets configured")
	}
	return c.Secrets.Get(ctx, key, s)
}

// ofPod keeps the Checkpoints of one pod.
func ofPod(cps []v1alpha1.Checkpoint, pod string) []v1alpha1.Checkpoint {
	return filterCheckpoints(cps, func(c *v1alpha1.Checkpoint) bool { return c.Spec.PodName == pod })
}

// byClusterAndPod groups Checkpoints by "<cluster>/<pod>": a pod name is
// unique in one cluster only (each member of a Divided StatefulSet runs
// its own db-0).
func byClusterAndPod(cps []v1alpha1.Checkpoint) map[string][]v1alpha1.Checkpoint {
	out := map[string][]v1alpha1.Checkpoint{}
	for _, c := range cps {
		k := c.Labels[LabelCluster] + "/" + c.Spec.PodName
		out[k] = append(out[k], c)
	}
	return out
}

// retain applies the policy's retention to the workload's Checkpoints and
// returns those kept. Per cluster and pod the keep newest verified ones
// stay; of a pod that no longer runs there (a Deployment's pods get new
// names on every rollout and move) none stays but those in use. Never
// pruned: the Checkpoints of the given Migrations (the running one, and
// the last that restored the workload: its restored pods were made from
// those images, and an operator inspects them) and those whose images the
// armed plan restores (with keep=1 the image being restored would
// otherwise go).
func (c *Controller) retain(ctx context.Context, p *v1alpha1.CheckpointPolicy, w *workload, migrations []*v1alpha1.Migration, all []v1alpha1.Checkpoint, running map[string]bool) ([]v1alpha1.Checkpoint, error) {
	inUse, err := c.inUse(ctx, w, migrations, all)
	if err != nil {
		return nil, err
	}
	groups := byClusterAndPod(all)
	var newestRunning int64
	for key, group := range groups {
		if l := LatestVerified(group); l != nil && running[key] {
			newestRunning = max(newestRunning, completedAt(l))
		}
	}
	var kept []v1alpha1.Checkpoint
	for key, group := range groups {
		k, deleted := Prune(group, p.KeepOrDefault(), inUse)
		if !running[key] {
			// A gone pod's newest checkpoint stays while it is newer than
			// any of a running pod: the restore plan may arm it (mid-move,
			// the source's pods are gone and the destination has none yet).
			if l := LatestVerified(group); l != nil && completedAt(l) > newestRunning {
				k, deleted = Prune(group, 1, inUse)
			} else {
				k, deleted = PruneGone(group, inUse)
			}
		}
		kept = append(kept, k...)
		kept = append(kept, c.prune(ctx, p, deleted)...)
	}
	return kept, nil
}

// PruneGone splits the Checkpoints of a pod that no longer runs: only the
// unfinished and those in use stay.
func PruneGone(cps []v1alpha1.Checkpoint, inUse map[string]bool) (kept, deleted []v1alpha1.Checkpoint) {
	for _, c := range cps {
		if inUse[c.Name] || !c.IsFinished() {
			kept = append(kept, c)
		} else {
			deleted = append(deleted, c)
		}
	}
	return kept, deleted
}

// inUse names the Checkpoints retention must keep: those of the given
// Migrations (nil ones are skipped) and those whose images the armed
// restore plan names.
func (c *Controller) inUse(ctx context.Context, w *workload, migrations []*v1alpha1.Migration, all []v1alpha1.Checkpoint) (map[string]bool, error) {
	out := migrationCheckpoints(migrations...)
	op, err := c.armedPolicyView(ctx, w)
	if err != nil || op == nil {
		return out, err
	}
	raw, err := json.Marshal(op.Spec)
	if err != nil {
		return nil, fmt.Errorf("read the armed plan %s/%s: %w", op.Namespace, op.Name, err)
	}
	out[op.Annotations[restoreKey]] = true
	for _, cp := range all {
		for _, cc := range cp.Status.Containers {
			if cc.Image != "" && strings.Contains(string(raw), cc.Image) {
				out[cp.Name] = true
			}
		}
	}
	return out, nil
}

// migrationCheckpoints names the Checkpoints the Migrations restore from.
func migrationCheckpoints(ms ...*v1alpha1.Migration) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		if m == nil {
			continue
		}
		for _, cp := range m.Status.Checkpoints {
			out[cp.Name] = true
		}
	}
	return out
}

// prune deletes Checkpoints past retention and returns those it could not
// delete. The images go with them: the checkpoints controller's finalizer
// deletes a Checkpoint's images before the Checkpoint goes (and keeps it
// while the registry refuses); Karmada deletes the propagated copies.
func (c *Controller) prune(ctx context.Context, p *v1alpha1.CheckpointPolicy, deleted []v1alpha1.Checkpoint) (left []v1alpha1.Checkpoint) {
	for i := range deleted {
		cp := &deleted[i]
		if err := c.Client.Delete(ctx, cp); err != nil && !apierrors.IsNotFound(err) {
			c.Recorder.Eventf(p, corev1.EventTypeWarning, "CheckpointDeleteFailed", "checkpoint %s: %v", cp.Name, err)
			left = append(left, *cp)
		}
	}
	return left
}

// pruneDeletedWorkloads deletes the policy's Checkpoints whose workload
// template is gone (or being deleted): they are owned by the policy, so a
// deleted StatefulSet or Deployment would otherwise leave them, and their
// images, for as long as the policy lives (issue 11 defect 6). A template
// the policy merely no longer selects keeps them: a selector edit must not
// delete state. The images go first (the finalizer), as in prune.
//
// It runs at every reconcile of the policy, so it reads the cache: a live
// list there was the Karmada API server's largest response at 1,000
// workloads (every Checkpoint of the policy, several times a second in a
// round). A Checkpoint is made from a workload already in the cache, so
// the cache never lists one whose template it has not seen.
func (c *Controller) pruneDeletedWorkloads(ctx context.Context, p *v1alpha1.CheckpointPolicy) error {
	var l v1alpha1.CheckpointList
	if err := c.Client.List(ctx, &l, client.InNamespace(p.Namespace), client.MatchingLabels{LabelPolicy: p.Name}); err != nil {
		return fmt.Errorf("list checkpoints of policy %s: %w", p.Name, err)
	}
	exists, err := c.existingWorkloads(ctx, p.Namespace)
	if err != nil {
		return err
	}
	gone := filterCheckpoints(l.Items, func(cp *v1alpha1.Checkpoint) bool {
		return cp.DeletionTimestamp == nil && !exists[cp.Labels[LabelWorkload]]
	})
	if left := c.prune(ctx, p, gone); len(left) > 0 {
		return fmt.Errorf("%d checkpoints of deleted workloads not deleted (first %s of %s)", len(left), left[0].Name, left[0].Labels[LabelWorkload])
	}
	return nil
}
