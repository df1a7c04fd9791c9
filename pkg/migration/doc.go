// Package migration is stateshift's control-plane controller, run in the
// interpreter-webhook binary against the Karmada API server. It
//
//   - protects the workloads a CheckpointPolicy selects: a Checkpoint per pod
//     every schedule interval, created in the Karmada API and propagated to
//     the member running the pod by a PropagationPolicy it owns, with
//     retention in the Karmada API and in the registry;
//   - keeps the restore armed: a Karmada OverridePolicy (pkg/restore) that
//     rewrites the workload for every cluster except those running it, so
//     any cluster Karmada picks next restores from the latest verified
//     checkpoint (transparent failover);
//   - detects moves (cordon, reschedules, evictions, failover, placement
//     changes, a person's Migration) and records each as a Migration that it
//     follows to Restored (or FellBack/Failed);
//   - withdraws the plan from a destination once it runs healthy, so the
//     restore happens once.
//
// The pure parts (selection, retention, plans, exclusion, phases) are in
// their own files and tested without an API server.
package migration
