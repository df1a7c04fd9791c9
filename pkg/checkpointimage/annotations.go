package checkpointimage

import (
	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

const (
	// AnnotationCRIO is the manifest annotation CRI-O uses to detect a
	// checkpoint image; its value is the container name.
	AnnotationCRIO = "io.kubernetes.cri-o.annotations.checkpoint.name"
	// AnnotationCRIU is the key containerd (2.1-2.3) and checkpointctl use.
	AnnotationCRIU = metadata.CheckpointAnnotationName
	// AnnotationRootfsImageName records the image the container ran.
	AnnotationRootfsImageName = metadata.CheckpointAnnotationRootfsImageName
	// AnnotationRootfsImageID records the digest of that image when known.
	AnnotationRootfsImageID = metadata.CheckpointAnnotationRootfsImageID
	// AnnotationPod and AnnotationNamespace record where the checkpoint came from.
	AnnotationPod       = metadata.CheckpointAnnotationPod
	AnnotationNamespace = metadata.CheckpointAnnotationNamespace
)

// Source describes the checkpointed container, as read from config.dump.
type Source struct {
	Container      string
	Pod            string
	Namespace      string
	RootfsImage    string
	RootfsImageRef string
}

// Annotations returns the manifest annotations of a checkpoint image of src:
// both detection keys, so CRI-O and containerd recognise it, plus the rootfs
// image so a destination knows what to pre-pull.
func Annotations(src Source) map[string]string {
	a := map[string]string{
		AnnotationCRIO: src.Container,
		AnnotationCRIU: src.Container,
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AnnotationRootfsImageName, src.RootfsImage)
	set(AnnotationRootfsImageID, src.RootfsImageRef)
	set(AnnotationPod, src.Pod)
	set(AnnotationNamespace, src.Namespace)
	return a
}
