// Package podrestore is the member-side half of a restore: a mutating
// admission webhook for pods created from a pod template that stateshift
// rewrote (it carries stateshift.io/restored-from).
//
// A restored template keeps the workload's own images and names the
// checkpoint images in annotations: stateshift.io/restore-images for every
// pod, stateshift.io/pod-images per pod (a StatefulSet's pods were
// checkpointed one by one: db-1 must restore db-1's checkpoint, not
// db-0's). The control plane can only write the template (Karmada
// propagates workloads, not pods); this webhook sets each pod's images as
// the pod is created. It also keeps the restore to once: after the plan is
// withdrawn from a restored workload, Retain records
// stateshift.io/restore-completed on it, and a pod created later (a
// StatefulSet pod re-created, a Deployment scaled up) starts from the
// template's own image instead of bringing back the old state.
//
// The handler only reads: the owning workload's metadata. It never writes
// to the API, so it is safe for dry runs and retries. The API server calls
// it only for pods that carry the annotation (matchConditions in
// artifacts/agent/pod-restore-webhook.yaml): with failurePolicy Fail while
// the restore is pending (a pod never starts without its checkpoint
// because the webhook was down; the workload controller retries the
// create), with Ignore once it completed. ScopeReconciler, the process's
// only writer, lists the completed restores in those conditions.
package podrestore
