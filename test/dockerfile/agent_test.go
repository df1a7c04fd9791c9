package dockerfile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stateshift/stateshift/test/testenv"
)

// The agent image is the product design's: Alpine with buildah and its
// tools, a nonroot user 65532 with its own storage.conf, the binary built in
// a separate Go stage.
func TestAgentDockerfile(t *testing.T) {
	stages, err := Parse(filepath.Join(testenv.Root(), "Dockerfile.agent"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.Base, "golang:") {
		t.Errorf("build stage base %q, want golang:*", build.Base)
	}
	var buildCmd string
	for _, r := range build.Find("RUN") {
		if strings.Contains(r.Args, "go build") {
			buildCmd = r.Args
		}
	}
	if !strings.Contains(buildCmd, "CGO_ENABLED=0") || !strings.Contains(buildCmd, "./cmd/checkpoint-agent") {
		t.Errorf("build stage does not build ./cmd/checkpoint-agent statically: %q", buildCmd)
	}
	if !strings.HasPrefix(final.Base, "alpine:") {
		t.Errorf("final base %q, want alpine", final.Base)
	}
	var apk string
	for _, r := range final.Find("RUN") {
		if strings.Contains(r.Args, "apk add") {
			apk = r.Args
		}
	}
	for _, pkg := range []string{"buildah", "fuse-overlayfs", "crun", "shadow", "ca-certificates", "curl"} {
		if !containsWord(apk, pkg) {
			t.Errorf("apk add lacks %s: %q", pkg, apk)
		}
	}
	all := joinArgs(final.Find("RUN"))
	for _, want := range []string{"-g 65532", "-u 65532", "storage.conf", `driver = "overlay"`} {
		if !strings.Contains(all, want) {
			t.Errorf("final stage RUN lacks %q", want)
		}
	}
	users := final.Find("USER")
	if len(users) == 0 || !strings.HasPrefix(users[len(users)-1].Args, "65532") {
		t.Errorf("final USER = %v, want 65532", users)
	}
	copies := joinArgs(final.Find("COPY"))
	if !strings.Contains(copies, "--from=build") || !strings.Contains(copies, "checkpoint-agent") {
		t.Errorf("binary not copied from the build stage: %q", copies)
	}
	eps := final.Find("ENTRYPOINT")
	if len(eps) != 1 || !strings.HasPrefix(eps[0].Args, "[") {
		t.Errorf("ENTRYPOINT must be exec form: %v", eps)
	}
}

func TestParseJoinsContinuationsAndSkipsComments(t *testing.T) {
	stages, err := Parse(filepath.Join("testdata", "sample.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "build" || stages[1].Base != "scratch" {
		t.Fatalf("stages = %+v", stages)
	}
	runs := stages[0].Find("RUN")
	if len(runs) != 1 || runs[0].Args != "a && b && c" || runs[0].Line != 4 {
		t.Fatalf("RUN = %+v", runs)
	}
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func joinArgs(ins []Instruction) string {
	var b strings.Builder
	for _, in := range ins {
		b.WriteString(in.Args + "\n")
	}
	return b.String()
}
