// Package interpreter is stateshift's Karmada resource-interpreter webhook.
//
// Karmada runs only the first interpreter that claims an operation for a
// kind (Lua customization, webhook, third-party, native), so claiming
// apps/v1 StatefulSet and Deployment replaces Karmada's native behaviour:
// every operation delegates to Karmada's native interpreter and adds only
// what migration needs (the stateshift block of the reflected status, and
// Retain for restored workloads). The Checkpoint kind gets its status
// reflected, aggregated and judged healthy here.
//
// The shape follows Karmada's pkg/resourceinterpreter/default/native: one
// file per operation, each a map from GroupVersionKind to a small function.
// The wire protocol is Karmada's own pkg/webhook/interpreter library.
package interpreter
