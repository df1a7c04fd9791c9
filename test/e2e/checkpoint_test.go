//go:build e2e

package e2e

// TestCheckpointThroughKarmada follows a Checkpoint from the Karmada API to
// the node and back: created in Karmada with a PropagationPolicy to
// member1, executed by member1's checkpoint agent (both builders), its
// status reflected and aggregated into the Karmada API by the interpreter
// webhook; the image is read back from the registry by digest, and a pod on
// member2 restored from it resumes the checkpointed state.

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/e2e/framework"
	"github.com/stateshift/stateshift/test/nodesim"
)

const (
	checkpointTimeout = 3 * time.Minute
	// The simulated memory of the checkpointed container.
	checkpointMemoryBytes = 4 << 20
)

var checkpointLogs = []string{
	"checkpoint-agent-member1", "nodesim-member1", "nodesim-member2", "interpreter-webhook",
	"karmada-controller-manager", "registry",
}

func getCheckpoint(ctx context.Context, c client.Client, ns, name string) (*stateshiftv1alpha1.Checkpoint, error) {
	cp := &stateshiftv1alpha1.Checkpoint{}
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp)
	return cp, err
}

func describeCheckpoint(cp *stateshiftv1alpha1.Checkpoint) string {
	var images []string
	for _, c := range cp.Status.Containers {
		images = append(images, c.Name+"="+c.Image)
	}
	return fmt.Sprintf("phase=%q node=%q images=%v archiveBytes=%d message=%q", cp.Status.Phase, cp.Status.NodeName, images, cp.Status.ArchiveBytes, cp.Status.Message)
}

// savedState reads checkpoint/nodesim-state.json from the image's layer:
// what the simulated node recorded at the checkpoint.
func savedState(ctx context.Context, image string) (*nodesim.SavedState, error) {
	ref, err := name.NewDigest(image, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", image, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != 1 {
		return nil, fmt.Errorf("%s has %d layers", image, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no %s in the layer", image, nodesim.StateFile)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: layer: %w", image, err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != nodesim.StateFile {
			continue
		}
		var s nodesim.SavedState
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&s); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", image, nodesim.StateFile, err)
		}
		return &s, nil
	}
}

func TestCheckpointThroughKarmada(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, checkpointLogs...)
	ctx := t.Context()
	// The Checkpoint's status comes back through the webhook: make sure
	// the configuration is applied (idempotent).
	if _, err := env.ApplyInterpreterConfig(ctx); err != nil {
		t.Fatal(err)
	}

	ns := env.Namespace(t, "e2e-checkpoint")
	sts := framework.StatefulSet(ns, "app", 1)
	sts.Spec.Template.Annotations = map[string]string{nodesim.MemoryBytesAnnotation: fmt.Sprint(checkpointMemoryBytes)}
	env.Create(t, sts, framework.PropagationPolicy(ns, "app-to-member1", []string{framework.Member1}, sts))
	framework.Eventually(t, scheduleTimeout, "app-0 Running on member1's node", env.PodsRunning(framework.Member1, ns, "app", 1))
	pod := "app-0"
	container := sts.Spec.Template.Spec.Containers[0].Name
	// Let the simulated state grow a little, so the checkpoint holds more
	// than a fresh start would.
	var source nodesim.ContainerState
	framework.Eventually(t, time.Minute, "app-0's simulated counter on member1 reaches 3", func(ctx context.Context) (bool, string, error) {
		states, err := env.NodeState(ctx, framework.Member1, ns, pod, container)
		if err != nil || len(states) != 1 {
			return false, fmt.Sprintf("states %+v", states), err
		}
		source = states[0]
		return source.Running && source.Counter >= 3 && source.MemoryBytes == checkpointMemoryBytes,
			fmt.Sprintf("running=%t counter=%d memoryBytes=%d", source.Running, source.Counter, source.MemoryBytes), nil
	})

	repo := framework.RegistryHost() + "/e2e/" + ns
	builders := []stateshiftv1alpha1.Builder{stateshiftv1alpha1.BuilderNative, stateshiftv1alpha1.BuilderBuildah}
	pp := &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkpoints-to-member1"},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{
				APIVersion: stateshiftv1alpha1.GroupVersion.String(), Kind: stateshiftv1alpha1.CheckpointKind,
			}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{framework.Member1}},
			},
		},
	}
	env.Create(t, pp)
	for _, b := range builders {
		env.Create(t, &stateshiftv1alpha1.Checkpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-" + string(b)},
			Spec: stateshiftv1alpha1.CheckpointSpec{
				PodName: pod, Repository: repo, Builder: b,
			},
		})
	}

	images := map[stateshiftv1alpha1.Builder]string{}
	for _, b := range builders {
		cpName := "app-" + string(b)
		framework.Eventually(t, time.Minute, cpName+" propagated to member1", func(ctx context.Context) (bool, string, error) {
			cp, err := getCheckpoint(ctx, env.Members[framework.Member1], ns, cpName)
			if err != nil {
				return false, "", err
			}
			return cp.Spec.PodName == pod && cp.Spec.Repository == repo && cp.Spec.Builder == b,
				fmt.Sprintf("member1 copy spec %+v", cp.Spec), nil
		})
		var member *stateshiftv1alpha1.Checkpoint
		framework.Eventually(t, checkpointTimeout, cpName+" executed by member1's agent", func(ctx context.Context) (bool, string, error) {
			cp, err := getCheckpoint(ctx, env.Members[framework.Member1], ns, cpName)
			if err != nil {
				return false, "", err
			}
			if cp.Status.Phase == stateshiftv1alpha1.CheckpointFailed {
				t.Fatalf("%s failed on member1: %s", cpName, describeCheckpoint(cp))
			}
			member = cp
			ok := cp.Status.Phase == stateshiftv1alpha1.CheckpointSucceeded && len(cp.Status.Containers) == 1 &&
				strings.HasPrefix(cp.Status.Containers[0].Image, repo+"@sha256:")
			return ok, describeCheckpoint(cp), nil
		})
		if member.Status.NodeName != framework.Member1+"-node" {
			t.Errorf("%s: executed on node %q, want %s-node", cpName, member.Status.NodeName, framework.Member1)
		}
		if got := member.Status.Containers[0]; got.Name != container || got.ArchiveBytes < checkpointMemoryBytes || member.Status.ArchiveBytes != got.ArchiveBytes {
			t.Errorf("%s: member1 status containers %+v archiveBytes %d: want container %q with an archive of at least %d bytes",
				cpName, member.Status.Containers, member.Status.ArchiveBytes, container, checkpointMemoryBytes)
		}

		// Back in the Karmada API: InterpretStatus + AggregateStatus.
		framework.Eventually(t, time.Minute, cpName+" status reflected into the Karmada API", func(ctx context.Context) (bool, string, error) {
			cp, err := getCheckpoint(ctx, env.Karmada, ns, cpName)
			if err != nil {
				return false, "", err
			}
			saw := describeCheckpoint(cp)
			ready := meta.FindStatusCondition(cp.Status.Conditions, stateshiftv1alpha1.ConditionReady)
			ok := cp.Status.Phase == stateshiftv1alpha1.CheckpointSucceeded &&
				len(cp.Status.Containers) == 1 && cp.Status.Containers[0] == member.Status.Containers[0] &&
				cp.Status.ArchiveBytes == member.Status.ArchiveBytes &&
				cp.Status.NodeName == member.Status.NodeName &&
				ready != nil && ready.Status == metav1.ConditionTrue &&
				meta.IsStatusConditionTrue(cp.Status.Conditions, stateshiftv1alpha1.ConditionCheckpointed) &&
				meta.IsStatusConditionTrue(cp.Status.Conditions, stateshiftv1alpha1.ConditionPushed) &&
				strings.HasPrefix(cp.Status.Message, "cluster "+framework.Member1)
			return ok, saw, nil
		})
		image := member.Status.Containers[0].Image

		// The image is in the registry, by digest, as a checkpoint image.
		ref, err := name.NewDigest(image, name.Insecure)
		if err != nil {
			t.Fatalf("%s: image %q: %v", cpName, image, err)
		}
		desc, err := remote.Get(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %s not in the registry: %v", cpName, image, err)
		}
		m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, container)
		if err != nil {
			t.Fatalf("%s: %s: %v", cpName, image, err)
		}
		for _, k := range []string{checkpointimage.AnnotationCRIO, checkpointimage.AnnotationCRIU} {
			if m.Annotations[k] != container {
				t.Errorf("%s: manifest annotation %s=%q, want %q", cpName, k, m.Annotations[k], container)
			}
		}
		t.Logf("%s: %s (%s, %d bytes archive, builder %s)", cpName, image, desc.MediaType, member.Status.ArchiveBytes, b)
		images[b] = image
	}

	// Restore on member2: a pod whose image is the checkpoint image resumes
	// the state the checkpoint recorded.
	for _, b := range builders {
		image := images[b]
		saved, err := savedState(ctx, image)
		if err != nil {
			t.Fatal(err)
		}
		if saved.Namespace != ns || saved.Pod != pod || saved.Container != container || saved.MemoryBytes != checkpointMemoryBytes ||
			saved.Seed != source.Seed || saved.Counter < source.Counter {
			t.Errorf("%s: saved state %+v: want %s/%s/%s (seed %d) at counter >= %d with %d bytes of memory",
				image, saved, ns, pod, container, source.Seed, source.Counter, checkpointMemoryBytes)
		}
		restored := "restored-" + string(b)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: restored, Labels: map[string]string{"app": restored}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []corev1.Container{{
					Name: container, Image: image, Command: sts.Spec.Template.Spec.Containers[0].Command,
				}},
			},
		}
		if err := env.Members[framework.Member2].Create(ctx, p); err != nil {
			t.Fatalf("create %s on member2: %v", restored, err)
		}
		framework.Eventually(t, scheduleTimeout, restored+" Running on member2's node", env.PodsRunning(framework.Member2, ns, restored, 1))
		states, err := env.NodeState(ctx, framework.Member2, ns, restored, container)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 {
			t.Fatalf("member2's node reports %d containers for %s/%s/%s: %+v", len(states), ns, restored, container, states)
		}
		s := states[0]
		t.Logf("%s on member2: restoredFrom=%s restoredCounter=%d (saved %d) restoredMemorySHA256=%s (saved %s) counter now %d",
			restored, s.RestoredFrom, s.RestoredCounter, saved.Counter, s.RestoredMemorySHA256, saved.MemorySHA256, s.Counter)
		if s.RestoredFrom != image || s.RestoredCounter != saved.Counter || s.RestoredMemorySHA256 != saved.MemorySHA256 ||
			s.MemoryBytes != saved.MemoryBytes || s.Counter < saved.Counter {
			t.Errorf("%s: member2's node state %+v does not resume the checkpoint %+v", restored, s, saved)
		}
	}
}
