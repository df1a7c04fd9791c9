// Package builder turns a kubelet checkpoint archive into an OCI checkpoint
// image in a registry. ImageBuilder has two implementations: Buildah, the
// product's original design (the buildah binary: from scratch, add, config,
// commit, push), and Native (go-containerregistry, streaming the archive
// straight to the registry with flat memory). Both return the manifest
// digest; the caller verifies it with checkpointimage.Verify.
package builder
