//go:build e2e

package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// builtImages names the images make images built for this run. The same
// build is pushed under two tags, so an upgrade to a new image tag rolls
// every stateshift pod.
type builtImages struct {
	registry      string
	first, second string
	kubectlTag    string
}

// imagesTimeout covers a cold build: mmdebstrap of the three bases and the
// static Go builds with the pinned toolchain (cached afterwards by version).
const imagesTimeout = 40 * time.Minute

// buildAndPushImages runs make images (hack/images.sh) for the local
// registry and pushes the agent, webhook and kubectl images with the
// registry's credentials (an auth file, never arguments).
func buildAndPushImages(ctx context.Context) (builtImages, error) {
	ctx, cancel := context.WithTimeout(ctx, imagesTimeout)
	defer cancel()
	b := builtImages{registry: framework.RegistryHost() + "/stateshift", first: "e2e-1", second: "e2e-2"}
	build := exec.CommandContext(ctx, "bash", filepath.Join(framework.Root(), "hack", "images.sh"), b.registry, b.first, "all")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return b, fmt.Errorf("hack/images.sh: %w", err)
	}
	out, err := exec.CommandContext(ctx, "bash", "-c", ". "+filepath.Join(framework.Root(), "hack", "lib.sh")+` && echo "${KUBE_VERSION}"`).Output()
	if err != nil {
		return b, fmt.Errorf("read KUBE_VERSION: %w", err)
	}
	b.kubectlTag = strings.TrimSpace(string(out))
	auth := filepath.Join(env.RunDir, "registry", "auth.json")
	push := func(image string) error {
		out, err := exec.CommandContext(ctx, "buildah", "push", "--quiet", "--authfile", auth, "--tls-verify=false",
			image, "docker://"+image).CombinedOutput()
		if err != nil {
			return fmt.Errorf("buildah push %s: %w: %s", image, err, out)
		}
		return nil
	}
	for _, name := range []string{"checkpoint-agent", "interpreter-webhook"} {
		first, second := b.image(name, b.first), b.image(name, b.second)
		if out, err := exec.CommandContext(ctx, "buildah", "tag", first, second).CombinedOutput(); err != nil {
			return b, fmt.Errorf("buildah tag %s %s: %w: %s", first, second, err, out)
		}
		for _, img := range []string{first, second} {
			if err := push(img); err != nil {
				return b, err
			}
		}
	}
	return b, push(b.image("kubectl", b.kubectlTag))
}

func (b builtImages) image(name, tag string) string { return b.registry + "/" + name + ":" + tag }
