// Package podrestore is the member-side half of a restore: a mutating
// admission webhook for pods created from a pod template that stateshift
// rewrote (it carries stateshift.io/restored-from).
//
// A pod template is shared by every pod of a workload, but a StatefulSet's
// pods were checkpointed one by one: db-1 must restore db-1's checkpoint,
// not db-0's. The control plane can only write the template (Karmada
// propagates workloads, not pods), so it records the per-pod images in the
// template annotation stateshift.io/pod-images and this webhook sets each
// pod's images as the pod is created. It also keeps the restore to once:
// after the plan is withdrawn from a restored workload, Retain records
// stateshift.io/restore-completed on it, and a pod created later (a
// StatefulSet pod re-created, a Deployment scaled up) starts from the
// template's original image instead of bringing back the old state.
//
// The webhook only reads: the owning workload's metadata. It never writes
// to the API, so it is safe for dry runs and retries. The API server calls
// it only for pods that carry the annotation (matchConditions in
// artifacts/agent/pod-restore-webhook.yaml), and with failurePolicy Fail: a
// pod never restores another pod's state because the webhook was down;
// the workload controller retries the create instead.
package podrestore
