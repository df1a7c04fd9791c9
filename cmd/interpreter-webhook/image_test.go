package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stateshift/stateshift/test/dockerfile"
)

// TestDockerfile checks Dockerfile.webhook statically (no image can be
// built on the test machines): a Go builder stage with cgo off, then a
// distroless static nonroot image running the binary as 65532 in exec form.
func TestDockerfile(t *testing.T) {
	stages, err := dockerfile.Parse(filepath.Join(rootDir(t), "Dockerfile.webhook"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.Base, "golang:") || build.Name == "" {
		t.Fatalf("builder stage: %+v", build)
	}
	built := false
	for _, run := range build.Find("RUN") {
		if strings.Contains(run.Args, "go build") {
			built = true
			if !strings.Contains(run.Args, "CGO_ENABLED=0") || !strings.Contains(run.Args, "-trimpath") || !strings.Contains(run.Args, "./cmd/interpreter-webhook") {
				t.Fatalf("go build: %s", run.Args)
			}
		}
	}
	if !built {
		t.Fatal("no go build in the builder stage")
	}
	if final.Base != "gcr.io/distroless/static:nonroot" {
		t.Fatalf("final base %q", final.Base)
	}
	if len(final.Find("RUN")) != 0 {
		t.Fatal("the final stage has no shell: it must not RUN")
	}
	copies := final.Find("COPY")
	if len(copies) != 1 || !strings.Contains(copies[0].Args, "--from="+build.Name) {
		t.Fatalf("final COPY: %+v", copies)
	}
	users := final.Find("USER")
	if len(users) == 0 || (users[len(users)-1].Args != "65532:65532" && users[len(users)-1].Args != "nonroot:nonroot" && users[len(users)-1].Args != "65532") {
		t.Fatalf("USER: %+v", users)
	}
	entry := final.Find("ENTRYPOINT")
	if len(entry) != 1 {
		t.Fatalf("ENTRYPOINT: %+v", entry)
	}
	var argv []string
	if err := json.Unmarshal([]byte(entry[0].Args), &argv); err != nil || len(argv) != 1 || argv[0] != "/interpreter-webhook" {
		t.Fatalf("ENTRYPOINT must be exec form [\"/interpreter-webhook\"]: %s (%v)", entry[0].Args, err)
	}
	if !strings.Contains(copies[0].Args, "/interpreter-webhook") {
		t.Fatalf("binary not copied to /interpreter-webhook: %s", copies[0].Args)
	}
}
