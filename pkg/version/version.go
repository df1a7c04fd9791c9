// Package version holds the build version, set with -ldflags at build time.
package version

// Version is stateshift's version, e.g. v0.1.0 or a git description.
var Version = "dev"
