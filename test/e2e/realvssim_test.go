//go:build e2e

package e2e

// The simulated node must agree with the real one: the same container, one
// on member1's real node and one on its simulated node, checkpointed by the
// same agent code through each node's kubelet API, turned into images by
// the same builder; the two images are compared where the rest of
// stateshift (and CRI-O on the restoring side) depends on them.

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

// checkpointImage is what a test reads back from a checkpoint image.
type checkpointImage struct {
	annotations map[string]string
	topLevel    []string // first path element of every layer entry, sorted, unique
	config      metadata.ContainerConfig
	spec        specs.Spec
}

// readCheckpointImage reads a checkpoint image's manifest annotations and
// its single layer's entries, config.dump and spec.dump.
func readCheckpointImage(ctx context.Context, image string) (*checkpointImage, error) {
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(framework.RegistryAuth(ref.Context().RegistryStr())))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", image, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return nil, fmt.Errorf("%s: want one layer, got %d (%v)", image, len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	out := &checkpointImage{annotations: m.Annotations}
	seen := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: layer: %w", image, err)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		top, _, _ := strings.Cut(p, "/")
		if top != "." && !seen[top] {
			seen[top] = true
			out.topLevel = append(out.topLevel, top)
		}
		switch p {
		case metadata.ConfigDumpFile:
			err = json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&out.config)
		case metadata.SpecDumpFile:
			err = json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&out.spec)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", image, p, err)
		}
	}
	sort.Strings(out.topLevel)
	return out, nil
}

func TestRealRuntimeSimulatorAgrees(t *testing.T) {
	framework.Phase(t)
	env.DumpLogsOnFailure(t, append(realLogs, "checkpoint-agent-member1", "nodesim-member1")...)
	ns := env.Namespace(t, "e2e-real-vs-sim")
	// The same container on both nodes of member1.
	real := framework.RealStatefulSet(ns, "real", framework.MemstateImage(), framework.MemstateArgs(4), 1)
	sim := framework.StatefulSet(ns, "sim", 1)
	sim.Spec.Template.Spec.Containers = real.Spec.Template.Spec.Containers
	env.Create(t, real, sim, framework.PropagationPolicy(ns, "to-member1", []string{framework.Member1}, real, sim))
	framework.Eventually(t, realTimeout, "real-0 on the real node", env.PodsRunning(framework.Member1, ns, "real", 1))
	framework.Eventually(t, realTimeout, "sim-0 on the simulated node", env.PodsRunning(framework.Member1, ns, "sim", 1))

	env.Create(t, &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkpoints-to-member1"},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.CheckpointKind}},
			Placement:         policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{framework.Member1}}},
		},
	})
	images := map[string]*checkpointImage{}
	for _, pod := range []string{"real-0", "sim-0"} {
		cp := &v1alpha1.Checkpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod},
			Spec:       v1alpha1.CheckpointSpec{PodName: pod, Repository: framework.RegistryHost() + "/e2e/" + ns, Builder: v1alpha1.BuilderNative},
		}
		if p := framework.CheckpointPolicy(ns, "x", time.Minute, ""); p.Spec.CredentialsSecretRef != nil {
			cp.Spec.CredentialsSecretRef = p.Spec.CredentialsSecretRef
		}
		env.Create(t, cp)
		var image string
		framework.Eventually(t, realTimeout, pod+" checkpointed on member1", func(ctx context.Context) (bool, string, error) {
			got, err := getCheckpoint(ctx, env.Members[framework.Member1], ns, pod)
			if err != nil {
				return false, "", err
			}
			if got.Status.Phase == v1alpha1.CheckpointFailed {
				t.Fatalf("%s failed: %s", pod, describeCheckpoint(got))
			}
			if got.Status.Phase == v1alpha1.CheckpointSucceeded && len(got.Status.Containers) == 1 {
				image = got.Status.Containers[0].Image
			}
			return image != "", describeCheckpoint(got), nil
		})
		img, err := readCheckpointImage(t.Context(), image)
		if err != nil {
			t.Fatal(err)
		}
		images[pod] = img
	}
	r, s := images["real-0"], images["sim-0"]
	t.Logf("real node's archive: %v", r.topLevel)
	t.Logf("simulator's archive: %v", s.topLevel)

	// The archive's top-level layout: what CRI-O reads on restore.
	for _, want := range []string{metadata.CheckpointDirectory, metadata.ConfigDumpFile, metadata.SpecDumpFile, metadata.RootFsDiffTar} {
		if !slices.Contains(r.topLevel, want) || !slices.Contains(s.topLevel, want) {
			t.Errorf("%s: real has it %t, simulator %t", want, slices.Contains(r.topLevel, want), slices.Contains(s.topLevel, want))
		}
	}
	for _, e := range r.topLevel {
		if !slices.Contains(s.topLevel, e) {
			t.Errorf("the real node's archive has %q, the simulator's does not", e)
		}
	}
	// config.dump: CRI-O's container name, the image the container ran.
	for pod, img := range images {
		app := strings.TrimSuffix(pod, "-0")
		nameRE := regexp.MustCompile(fmt.Sprintf(`^k8s_main_%s_%s_[0-9a-f-]{36}_\d+$`, regexp.QuoteMeta(pod), regexp.QuoteMeta(ns)))
		if !nameRE.MatchString(img.config.Name) {
			t.Errorf("%s (%s): config.dump name %q is not CRI-O's k8s_<container>_<pod>_<ns>_<uid>_<attempt>", pod, app, img.config.Name)
		}
		_, digest, _ := strings.Cut(img.config.RootfsImageName, "@")
		if digest == "" || !strings.HasSuffix(framework.MemstateImage(), "@"+digest) ||
			!regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(img.config.RootfsImageRef) {
			t.Errorf("%s: rootfs image %q ref %q, want the digest of %q and a 64-hex id", pod, img.config.RootfsImageName, img.config.RootfsImageRef, framework.MemstateImage())
		}
	}
	if r.config.RootfsImageName != s.config.RootfsImageName {
		t.Errorf("config.dump rootfsImageName: real %q, simulator %q", r.config.RootfsImageName, s.config.RootfsImageName)
	}
	if r.config.OCIRuntime != s.config.OCIRuntime {
		t.Errorf("OCI runtime: real %q, simulator %q", r.config.OCIRuntime, s.config.OCIRuntime)
	}
	// spec.dump: the process the restore starts. The simulator does not
	// pull ordinary images, so it cannot know the image's entrypoint: it
	// records the container's command and args, which end the real list.
	ra, sa := processArgs(r.spec), processArgs(s.spec)
	if len(sa) == 0 || len(ra) < len(sa) || !slices.Equal(ra[len(ra)-len(sa):], sa) {
		t.Errorf("spec.dump process args: real %v, simulator %v (want the simulator's to end the real list)", ra, sa)
	}
	// The image's annotations: same keys (what CRI-O and stateshift read).
	if rk, sk := annotationKeys(r.annotations), annotationKeys(s.annotations); !slices.Equal(rk, sk) {
		t.Errorf("image annotations: real %v, simulator %v", rk, sk)
	}
}

func processArgs(s specs.Spec) []string {
	if s.Process == nil {
		return nil
	}
	return s.Process.Args
}

func annotationKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
