package restore

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Plan says which checkpoint a destination restores from.
type Plan struct {
	// Checkpoint is the Checkpoint's name. It must be a valid label value
	// too (<= 63 characters) since Karmada may carry it in a label.
	Checkpoint string `json:"checkpoint"`
	// Containers maps a container name to its checkpoint image
	// (repository@sha256:...; tags are refused: a tag can move).
	Containers map[string]string `json:"containers"`
	// Pods optionally maps a pod name to per-container images, for a
	// multi-replica StatefulSet whose pods were checkpointed separately. It
	// is carried to the member as the pod-template annotation
	// AnnotationPodImages; Containers stays the template's default.
	Pods map[string]map[string]string `json:"pods,omitempty"`
	// SourceImages optionally maps a container to the image it ran when
	// checkpointed (the workload template's at the time). It is carried as
	// the pod-template annotation AnnotationSourceImages: the member's
	// pod-restore webhook starts a pod cold when its template now runs
	// another image, so a template change racing a move never restores the
	// old version's process.
	SourceImages map[string]string `json:"sourceImages,omitempty"`
	// TemplateGeneration optionally is the generation of the workload's
	// template in the Karmada API the plan was armed for. It is carried as
	// the pod-template annotation AnnotationTemplateGeneration; Karmada
	// writes the generation it rendered on the member workload
	// (resourcetemplate.karmada.io/generation), and the member's
	// pod-restore webhook starts a pod cold when the two differ: the
	// template changed after the plan was armed.
	TemplateGeneration int64 `json:"templateGeneration,omitempty"`
	// KeepPods optionally is, for a StatefulSet restored into a cluster
	// that already runs it, how many of its pods (ordinals 0..KeepPods-1)
	// stay as they are: the rewrite sets the rolling update's partition
	// to it, so the template change rolls only the new pods, which
	// restore the moved replicas, and never restarts the pods that stay.
	KeepPods int32 `json:"keepPods,omitempty"`
	// PullSecret optionally names a Secret (the policy's pull-only
	// pullSecretRef, propagated to the destination) that the rewrite adds
	// to the pod template's imagePullSecrets, beside the workload's own:
	// the destination's kubelet pulls the checkpoint images with it.
	PullSecret string `json:"pullSecret,omitempty"`
}

// Validate checks the plan on its own (not against a workload).
func (p Plan) Validate() error {
	if p.Checkpoint == "" {
		return fmt.Errorf("restore plan: checkpoint name is empty")
	}
	if errs := validation.IsDNS1123Subdomain(p.Checkpoint); len(errs) > 0 {
		return fmt.Errorf("restore plan: checkpoint name %q: %v", p.Checkpoint, errs)
	}
	if errs := validation.IsValidLabelValue(p.Checkpoint); len(errs) > 0 {
		return fmt.Errorf("restore plan: checkpoint name %q must fit a label value: %v", p.Checkpoint, errs)
	}
	if len(p.Containers) == 0 {
		return fmt.Errorf("restore plan %s: no containers", p.Checkpoint)
	}
	for _, c := range sortedKeys(p.Containers) {
		if err := CheckDigestImage(p.Containers[c]); err != nil {
			return fmt.Errorf("restore plan %s: container %q: %w", p.Checkpoint, c, err)
		}
	}
	if p.KeepPods < 0 {
		return fmt.Errorf("restore plan %s: keepPods %d is negative", p.Checkpoint, p.KeepPods)
	}
	if p.PullSecret != "" {
		if errs := validation.IsDNS1123Subdomain(p.PullSecret); len(errs) > 0 {
			return fmt.Errorf("restore plan %s: pull Secret name %q: %v", p.Checkpoint, p.PullSecret, errs)
		}
	}
	if p.TemplateGeneration < 0 {
		return fmt.Errorf("restore plan %s: template generation %d is negative", p.Checkpoint, p.TemplateGeneration)
	}
	for _, c := range sortedKeys(p.SourceImages) {
		if _, ok := p.Containers[c]; !ok || p.SourceImages[c] == "" {
			return fmt.Errorf("restore plan %s: source image of container %q: not a planned container, or empty", p.Checkpoint, c)
		}
	}
	for _, pod := range sortedKeys(p.Pods) {
		if errs := validation.IsDNS1123Subdomain(pod); len(errs) > 0 {
			return fmt.Errorf("restore plan %s: pod name %q: %v", p.Checkpoint, pod, errs)
		}
		for _, c := range sortedKeys(p.Pods[pod]) {
			if _, ok := p.Containers[c]; !ok {
				return fmt.Errorf("restore plan %s: pod %s: container %q is not in the plan's containers", p.Checkpoint, pod, c)
			}
			if err := CheckDigestImage(p.Pods[pod][c]); err != nil {
				return fmt.Errorf("restore plan %s: pod %s: container %q: %w", p.Checkpoint, pod, c, err)
			}
		}
	}
	return nil
}

// CheckDigestImage accepts only repository@sha256:<hex>, without a tag: a
// restore must start exactly the image that was verified after the push.
func CheckDigestImage(image string) error {
	if _, ok := digestImages.Load(image); ok {
		return nil
	}
	if err := checkDigestImage(image); err != nil {
		return err
	}
	if digestImagesCount.Add(1) > digestImagesMax {
		digestImages.Clear()
		digestImagesCount.Store(0)
	}
	digestImages.Store(image, struct{}{})
	return nil
}

// digestImages remembers the references CheckDigestImage accepted: the
// controller checks every armed plan's images at each reconcile of its
// policy, and parsing them (a regular expression) was a twentieth of its
// CPU in a failover storm. Bounded: past digestImagesMax it starts empty.
var (
	digestImages      sync.Map
	digestImagesCount atomic.Int64
)

const digestImagesMax = 20000

func checkDigestImage(image string) error {
	ref, err := reference.Parse(image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	if _, digested := ref.(reference.Digested); !digested {
		return fmt.Errorf("image %q is not by digest (repository@sha256:...)", image)
	}
	if _, tagged := ref.(reference.Tagged); tagged {
		return fmt.Errorf("image %q carries a tag: give the checkpoint image by digest only (repository@sha256:...)", image)
	}
	if _, named := ref.(reference.Named); !named {
		return fmt.Errorf("image %q has no repository", image)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
