// Package migration is stateshift's control-plane controller, run in the
// interpreter-webhook binary against the Karmada API server. It is a set of
// controllers registered by name (Controllers, turned on and off with
// --controllers as in Karmada's controller manager), each the only writer
// of one kind of object and each deciding from what it observes now
// (bindings, clusters, Checkpoints, Migrations, member pods), not from what
// it wrote before:
//
//   - checkpoints: scheduled Checkpoints of every protected pod, the fresh
//     ones a planned Migration waits for, retention in the Karmada API and
//     in the registry, and the CheckpointPolicy status;
//   - restoreplan: the restore OverridePolicy (pkg/restore) that rewrites
//     the workload for every cluster except those running it, so any
//     cluster Karmada picks next restores from the latest verified
//     checkpoint (or from the checkpoints a running Migration chose);
//   - migrations: each Migration's phases and status, the binding's
//     scheduling hold and placement, every phase bounded by a deadline;
//   - movedetection: Migrations for the moves Karmada makes (a cluster the
//     workload's Checkpoints were taken on is no longer bound) and for
//     cordoned clusters.
//
// The pure parts (selection, retention, plans, exclusion, phases, pod
// judgements) are in their own files and tested without an API server.
package migration
