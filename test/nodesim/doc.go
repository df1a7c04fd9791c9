// Package nodesim plays one Kubernetes node — the kubelet and a CRI-O-like
// container runtime — so that stateshift runs for real on a machine where no
// kubelet, CRI-O or CRIU can run.
//
// A Node registers itself with a real API server, keeps itself Ready, runs
// the pods bound to it as simulated containers whose state (a counter and a
// block of "memory") grows every tick, serves the kubelet checkpoint API over
// TLS with TokenReview/SubjectAccessReview authorization (answers kept for the
// TTLs the local environment's real kubelets use), writes archives in
// CRI-O's layout, and restores containers from checkpoint images pulled from a
// registry, refusing the way CRI-O does when it cannot. Like a kubelet it
// reports each pull in a Pulled event on the pod; a restored container's
// state also tells how long the pull and the rest of the restore took.
package nodesim
