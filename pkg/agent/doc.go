// Package agent is the checkpoint agent that runs on every node of a member
// cluster: it executes the Checkpoint objects whose pod runs on its own node
// by asking the kubelet for a checkpoint of each container, turning each
// archive into an OCI checkpoint image, pushing it, reading it back by digest
// and deleting the archive.
package agent
