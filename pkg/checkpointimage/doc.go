// Package checkpointimage is the one place that knows what makes an OCI image
// a container checkpoint image: the manifest annotations CRI-O and containerd
// look for, the media types, and how such an image is checked after a push
// (by the agent) and before a restore (by the node simulator, as a runtime
// would).
package checkpointimage
