//go:build e2e

package e2e

// Issue 5's fault scenarios through the whole system (the agent-level
// versions are in pkg/agent): the registry down during a scheduled
// checkpoint, the agent killed mid-push, the interpreter webhook (and the
// migration controller it hosts) restarted during a move.

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

// armedNow is the checkpoint a CheckpointPolicy's status says is armed.
func armedNow(ctx context.Context, ns, policy, workload string) (string, error) {
	p := &v1alpha1.CheckpointPolicy{}
	if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy}, p); err != nil {
		return "", err
	}
	for _, w := range p.Status.Workloads {
		if w.Name == workload && w.Armed {
			return w.ArmedCheckpoint, nil
		}
	}
	return "", nil
}

// memberCheckpoint reads a Checkpoint where the agent executes it.
func memberCheckpoint(ctx context.Context, cluster, ns, name string) (*v1alpha1.Checkpoint, error) {
	cp := &v1alpha1.Checkpoint{}
	err := env.Members[cluster].Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp)
	return cp, err
}

// TestFaultRegistryDownDuringScheduledCheckpoint: the registry stops; the
// next scheduled Checkpoint cannot push and retries (the plan stays on the
// last verified checkpoint); the registry comes back; that same Checkpoint
// succeeds with a verified image and the plan moves to it.
func TestFaultRegistryDownDuringScheduledCheckpoint(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, append(migrationLogs, "registry")...)
	ns := env.Namespace(t, "e2e-fault-registry")
	cp := protectedOnMember1(t, ns, framework.Deployment(ns, "web", 1), 10*time.Second, "", []string{framework.Member1})
	before, err := armedNow(t.Context(), ns, cp.Name, "web")
	if err != nil || before == "" {
		t.Fatalf("armed checkpoint before the outage: %q %v", before, err)
	}
	env.StopComponents(t, "registry")

	var retrying string
	framework.Eventually(t, moveTimeout, "a Checkpoint scheduled during the outage retries", func(ctx context.Context) (bool, string, error) {
		var l v1alpha1.CheckpointList
		if err := env.Members[framework.Member1].List(ctx, &l, client.InNamespace(ns)); err != nil {
			return false, "", err
		}
		var saw []string
		for _, c := range l.Items {
			saw = append(saw, fmt.Sprintf("%s %s attempts=%d %q", c.Name, c.Status.Phase, c.Status.Attempts, c.Status.Message))
			// Every push before the outage succeeded: a Checkpoint with a
			// failed attempt ran into it. (Not "created after the outage":
			// creation times have whole seconds, and one created in the
			// outage's first second looked older than it.)
			if c.Status.Attempts >= 2 && c.Status.Phase != v1alpha1.CheckpointSucceeded {
				retrying = c.Name
				return true, saw[len(saw)-1], nil
			}
		}
		return false, fmt.Sprint(saw), nil
	})
	// The plan stays on a checkpoint verified before the outage: the one
	// armed now (a push that finished just before the stop may have moved
	// it past the one armed earlier), never the one retrying. The end of
	// the test checks it moves on once the registry is back.
	before, err = armedNow(t.Context(), ns, cp.Name, "web")
	if err != nil || before == "" || before == retrying {
		t.Fatalf("while the registry is down the plan must stay on a verified pre-outage checkpoint, it is on %q (retrying %s; %v)", before, retrying, err)
	}

	// The registry is back early in local-up's run, and the retried
	// Checkpoint may succeed, and be pruned by retention (keep 3, one every
	// 10 s), before local-up has finished: follow it from now on.
	outcome := followCheckpoint(t, framework.Member1, ns, retrying)
	env.StartComponents(t)
	select {
	case r := <-outcome:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Logf("%s succeeded after %d attempts; its image holds the state at counter %d", retrying, r.attempts, r.saved.Counter)
	case <-time.After(moveTimeout):
		t.Fatalf("the retried Checkpoint %s did not succeed within %s of the registry's return", retrying, moveTimeout)
	}
	framework.Eventually(t, moveTimeout, "the plan moves past the pre-outage checkpoint", func(ctx context.Context) (bool, string, error) {
		now, err := armedNow(ctx, ns, cp.Name, "web")
		return err == nil && now != "" && now != before, "armed " + now, err
	})
}

// checkpointOutcome is how a followed Checkpoint ended.
type checkpointOutcome struct {
	attempts int32
	saved    nodesim.SavedState
	err      error
}

// followCheckpoint polls a member's Checkpoint until it is Succeeded (its
// image's saved state read back at once, before retention may delete it)
// or Failed, and reports on the channel; it stops with the test.
func followCheckpoint(t *testing.T, cluster, ns, name string) <-chan checkpointOutcome {
	out := make(chan checkpointOutcome, 1)
	go func() {
		for t.Context().Err() == nil {
			c, err := memberCheckpoint(t.Context(), cluster, ns, name)
			switch {
			case err != nil:
			case c.Status.Phase == v1alpha1.CheckpointFailed:
				out <- checkpointOutcome{err: fmt.Errorf("%s Failed after %d attempts: %s", name, c.Status.Attempts, c.Status.Message)}
				return
			case c.Status.Phase == v1alpha1.CheckpointSucceeded && len(c.Status.Containers) > 0:
				saved, err := framework.SavedState(t.Context(), c.Status.Containers[0].Image)
				if err != nil {
					err = fmt.Errorf("the image of %s after the outage: %w", name, err)
				}
				out <- checkpointOutcome{attempts: c.Status.Attempts, saved: saved, err: err}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return out
}

// planWatch follows the workload's restore OverridePolicy while a test
// runs and checks every image it references as soon as it appears: the
// image belongs to a Succeeded Checkpoint and reads back completely from
// the registry (every blob against its digest). Checking at once matters:
// retention later deletes old images.
type planWatch struct {
	mu       sync.Mutex
	seen     map[string]bool
	problems []string
}

var digestImage = regexp.MustCompile(`[A-Za-z0-9._:/-]+@sha256:[0-9a-f]{64}`)

func watchPlanImages(t *testing.T, ns, name string) *planWatch {
	w := &planWatch{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			op := &policyv1alpha1.OverridePolicy{}
			if err := env.Karmada.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, op); err == nil {
				for _, r := range op.Spec.OverrideRules {
					for _, p := range r.Overriders.Plaintext {
						for _, img := range digestImage.FindAllString(string(p.Value.Raw), -1) {
							w.check(ctx, ns, img)
						}
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *planWatch) check(ctx context.Context, ns, img string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[img] {
		return
	}
	w.seen[img] = true
	cps, err := env.Checkpoints(ctx, ns, "Deployment", "web")
	if err != nil {
		w.seen[img] = false // try again
		return
	}
	owner := ""
	for _, cp := range cps {
		for _, cc := range cp.Status.Containers {
			if cc.Image == img && cp.Status.Phase == v1alpha1.CheckpointSucceeded {
				owner = cp.Name
			}
		}
	}
	if owner == "" {
		w.problems = append(w.problems, img+": no Succeeded Checkpoint has this image")
	}
	if _, err := framework.SavedState(ctx, img); err != nil {
		w.problems = append(w.problems, fmt.Sprintf("%s (%s) does not read back: %v", img, owner, err))
	}
}

func (w *planWatch) result() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen), append([]string(nil), w.problems...)
}

// TestFaultAgentKilledMidPush: member1's agent is killed while it pushes a
// scheduled checkpoint image; after it restarts that Checkpoint completes
// with a verified image, and the restore plan never referenced an image
// that was partial or unverified.
func TestFaultAgentKilledMidPush(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-fault-agent")
	deploy := framework.Deployment(ns, "web", 1)
	// 64 MiB: building and pushing take a few hundred milliseconds.
	framework.WithState(deploy, 64<<20)
	plan := watchPlanImages(t, ns, "stateshift-restore-deployment-web")
	protectedOnMember1(t, ns, deploy, 10*time.Second, "", []string{framework.Member1})

	var killed string
	deadline := time.Now().Add(moveTimeout)
	for killed == "" {
		if time.Now().After(deadline) {
			t.Fatal("no Checkpoint was seen Pushing")
		}
		var l v1alpha1.CheckpointList
		if err := env.Members[framework.Member1].List(t.Context(), &l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Items {
			if c.Status.Phase == v1alpha1.CheckpointPushing {
				killed = c.Name
				break
			}
		}
		if killed == "" {
			time.Sleep(20 * time.Millisecond)
		}
	}
	env.StopComponents(t, "checkpoint-agent-member1")
	t.Logf("killed member1's agent while %s was Pushing", killed)
	env.StartComponents(t)

	framework.Eventually(t, moveTimeout, killed+" completes after the agent restarts", func(ctx context.Context) (bool, string, error) {
		c, err := memberCheckpoint(ctx, framework.Member1, ns, killed)
		if err != nil {
			return false, "", err
		}
		if c.Status.Phase == v1alpha1.CheckpointFailed {
			return false, "", fmt.Errorf("%s Failed: %s", c.Name, c.Status.Message)
		}
		return c.Status.Phase == v1alpha1.CheckpointSucceeded, fmt.Sprintf("%s attempts=%d %q", c.Status.Phase, c.Status.Attempts, c.Status.Message), nil
	})
	c, err := memberCheckpoint(t.Context(), framework.Member1, ns, killed)
	if err != nil {
		t.Fatal(err)
	}
	image := c.Status.Containers[0].Image
	framework.Eventually(t, moveTimeout, "the plan is armed from the completed checkpoint or a later one", func(ctx context.Context) (bool, string, error) {
		cps, err := env.Checkpoints(ctx, ns, "Deployment", "web")
		if err != nil {
			return false, "", err
		}
		now, err := armedNow(ctx, ns, "protect", "web")
		if err != nil {
			return false, "", err
		}
		for _, cp := range cps {
			if cp.Name == now && !cp.CreationTimestamp.Before(&c.CreationTimestamp) {
				return true, "armed " + now, nil
			}
		}
		return false, "armed " + now, nil
	})

	n, problems := plan.result()
	if n == 0 {
		t.Fatal("the restore plan was never seen referencing an image")
	}
	for _, p := range problems {
		t.Errorf("the restore plan referenced %s", p)
	}
	t.Logf("the plan referenced %d images, each a Succeeded Checkpoint's and complete in the registry (%s among them)", n, image)
}

// TestFaultWebhookRestartedDuringMove: the interpreter webhook, which also
// runs the migration controller, is killed while a person's Migration waits
// for its fresh checkpoint, and started again: the move completes and the
// destination resumes from that checkpoint.
func TestFaultWebhookRestartedDuringMove(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, migrationLogs...)
	ns := env.Namespace(t, "e2e-fault-webhook")
	// Both members allowed (it lands on member1): a person's move must
	// stay inside the placement.
	protectedOnMember1(t, ns, framework.Deployment(ns, "web", 1), 30*time.Second, "", framework.Members)
	phases := env.WatchMigrations(t, ns)
	mig := toMember2(ns, "Deployment", "web")
	// A move takes about a second; to restart the webhook inside it, member1's
	// agent is stopped first so that the Migration waits in Checkpointing.
	env.StopComponents(t, "checkpoint-agent-member1")
	env.Create(t, mig)
	framework.Eventually(t, moveTimeout, "Migration Checkpointing", migrationPhase(ns, mig.Name, v1alpha1.MigrationCheckpointing))
	env.StopComponents(t, "interpreter-webhook")
	time.Sleep(3 * time.Second) // Karmada calls the webhook and fails meanwhile
	env.StartComponents(t)      // the webhook and the agent

	framework.Eventually(t, moveTimeout, "Migration Restored after the restart", migrationPhase(ns, mig.Name, v1alpha1.MigrationRestored))
	m, err := getMigration(t.Context(), ns, mig.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := phases.Phases(mig.Name); !inOrder(got, v1alpha1.MigrationCheckpointing, v1alpha1.MigrationArmed, v1alpha1.MigrationRestoring, v1alpha1.MigrationRestored) {
		t.Fatalf("phases observed %v", got)
	}
	if len(m.Status.Checkpoints) != 1 {
		t.Fatalf("Migration checkpoints %+v", m.Status.Checkpoints)
	}
	image := m.Status.Checkpoints[0].Images[container]
	framework.Eventually(t, moveTimeout, "member2 runs restored from the Migration's image", restoredOn(framework.Member2, ns, "web", image))
	framework.Eventually(t, moveTimeout, "member1 runs nothing", env.NoPods(framework.Member1, ns, "web"))
	verifyRestoredState(t, framework.Member2, ns, "web", image)
}
