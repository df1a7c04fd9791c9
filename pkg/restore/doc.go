// Package restore turns a workload manifest and a restore plan into the
// manifest a destination cluster runs: the selected containers start from
// their checkpoint images. It is pure (no clients, no I/O) so that every
// place that needs the rewrite — the OverridePolicy the control plane arms,
// the interpreter's Retain, tests — computes the same result. Manifests
// are decoded once into their typed kind and edited on typed fields
// (workload.go says how the edits are written back).
//
// It is also the one place that knows the stateshift.io/ annotation keys
// written on workloads.
package restore
