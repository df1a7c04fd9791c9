package podrestore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// ImageReader reads the manifest annotations of a checkpoint image, where
// the agent recorded which pod, namespace and container it was taken from.
type ImageReader interface {
	Annotations(ctx context.Context, image string) (map[string]string, error)
}

// RegistryReader reads manifests from the registry: one GET by digest per
// image, with the webhook's own registry credentials (an auth file from a
// Secret, or anonymous), never the node's.
type RegistryReader struct {
	Keychain authn.Keychain
	// InsecureRegistries are hosts spoken to over plain HTTP.
	InsecureRegistries []string
	// Timeout bounds one read; 0 means 3s (the API server gives the whole
	// webhook call 5s).
	Timeout time.Duration
}

// Annotations reads image's manifest and checks that it is a checkpoint
// image.
func (r *RegistryReader) Annotations(ctx context.Context, image string) (map[string]string, error) {
	var opts []name.Option
	host, _, _ := strings.Cut(image, "/")
	for _, h := range r.InsecureRegistries {
		if h == host {
			opts = append(opts, name.Insecure)
		}
	}
	ref, err := name.NewDigest(image, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %s is not a reference by digest: %w", image, err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	kc := r.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain() // anonymous
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	if err != nil {
		return nil, fmt.Errorf("read the manifest of %s: %w", image, err)
	}
	m, err := checkpointimage.CheckManifest(desc.MediaType, desc.Manifest, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	return m.Annotations, nil
}

// CheckOrigin says whether a pod of namespace ns may restore image into its
// container, given the image's manifest annotations: only a checkpoint of
// the same container taken in the same namespace. A pod that learned
// another namespace's digest (Events and annotations show them) must not
// run that namespace's process, whatever credentials the node pulls with.
func CheckOrigin(ns, container, image string, annotations map[string]string) error {
	recorded, ok := annotations[checkpointimage.AnnotationNamespace]
	if !ok || recorded == "" {
		return fmt.Errorf("checkpoint image %s records no pod namespace (manifest annotation %s): it cannot be shown to come from namespace %s, so it is not restored",
			image, checkpointimage.AnnotationNamespace, ns)
	}
	if recorded != ns {
		return fmt.Errorf("checkpoint image %s was taken from a pod in namespace %q; a pod in namespace %q may not restore another namespace's process",
			image, recorded, ns)
	}
	if c := annotations[checkpointimage.AnnotationCRIO]; c != container {
		return fmt.Errorf("checkpoint image %s holds container %q, it cannot restore container %q", image, c, container)
	}
	return nil
}

// checkOrigins reads and checks every image the pod will restore. denied
// is a refusal (the image is not this pod's to restore); err means the
// images could not be read, which the API server may retry.
func checkOrigins(ctx context.Context, images ImageReader, ns string, restores map[string]string) (denied, err error) {
	containers := make([]string, 0, len(restores))
	for c := range restores {
		containers = append(containers, c)
	}
	sort.Strings(containers)
	for _, c := range containers {
		a, err := images.Annotations(ctx, restores[c])
		if err != nil {
			return nil, fmt.Errorf("container %s: cannot check where its checkpoint comes from: %w", c, err)
		}
		if err := CheckOrigin(ns, c, restores[c], a); err != nil {
			return fmt.Errorf("container %s: %w", c, err), nil
		}
	}
	return nil, nil
}
