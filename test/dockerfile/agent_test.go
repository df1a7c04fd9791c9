package dockerfile

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stateshift/stateshift/test/testenv"
)

// versionsEnv reads hack/versions.env (KEY=value lines).
func versionsEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.Root(), "hack", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// The agent image: a Debian base of IMAGES_DEBIAN_SUITE with buildah and its
// tools (the packages hack/images.sh puts into its own base), a nonroot user
// 65532 with its own storage.conf, the binary built in a Go stage of the
// pinned toolchain; base images are build arguments.
func TestAgentDockerfile(t *testing.T) {
	path := filepath.Join(testenv.Root(), "Dockerfile.agent")
	stages, err := Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	checkBaseArgs(t, path, stages)
	var buildCmd string
	for _, r := range build.Find("RUN") {
		if strings.Contains(r.Args, "go build") {
			buildCmd = r.Args
		}
	}
	if !strings.Contains(buildCmd, "CGO_ENABLED=0") || !strings.Contains(buildCmd, "-trimpath") || !strings.Contains(buildCmd, "./cmd/checkpoint-agent") {
		t.Errorf("build stage does not build ./cmd/checkpoint-agent statically: %q", buildCmd)
	}
	suite := versionsEnv(t)["IMAGES_DEBIAN_SUITE"]
	if suite == "" || final.Base != "debian:"+suite+"-slim" {
		t.Errorf("final base %q, want debian:%s-slim (IMAGES_DEBIAN_SUITE)", final.Base, suite)
	}
	var install string
	for _, r := range final.Find("RUN") {
		if strings.Contains(r.Args, "apt-get install") {
			install = r.Args
		}
	}
	for _, pkg := range agentPackages(t) {
		if !containsWord(install, pkg) {
			t.Errorf("apt-get install lacks %s (hack/images.sh's agent base has it): %q", pkg, install)
		}
	}
	all := joinArgs(final.Find("RUN"))
	for _, want := range []string{"-g 65532", "-u 65532", "storage.conf", `driver = "overlay"`, "--no-install-recommends", "rm -rf /var/lib/apt/lists"} {
		if !strings.Contains(all, want) {
			t.Errorf("final stage RUN lacks %q", want)
		}
	}
	for _, banned := range []string{"curl", "wget", "apk "} {
		if strings.Contains(all, banned) {
			t.Errorf("final stage RUN has %q", banned)
		}
	}
	users := final.Find("USER")
	if len(users) == 0 || !strings.HasPrefix(users[len(users)-1].Args, "65532") {
		t.Errorf("final USER = %v, want 65532", users)
	}
	copies := joinArgs(final.Find("COPY"))
	if !strings.Contains(copies, "--from=build") || !strings.Contains(copies, "/usr/local/bin/checkpoint-agent") {
		t.Errorf("binary not copied from the build stage: %q", copies)
	}
	eps := final.Find("ENTRYPOINT")
	if len(eps) != 1 || eps[0].Args != `["/usr/local/bin/checkpoint-agent"]` {
		t.Errorf("ENTRYPOINT must be exec form [\"/usr/local/bin/checkpoint-agent\"] as in hack/images.sh: %v", eps)
	}
}

// The webhook Dockerfile's bases are build arguments too, with the same Go
// toolchain; its final stage is checked in cmd/interpreter-webhook.
func TestWebhookDockerfileBaseArgs(t *testing.T) {
	path := filepath.Join(testenv.Root(), "Dockerfile.webhook")
	stages, err := Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	checkBaseArgs(t, path, stages)
}

// checkBaseArgs: every FROM names a build argument (or an earlier stage),
// every argument has a default, none is Alpine, and the Go stage is the
// toolchain hack/images.sh builds with (IMAGES_GO_TOOLCHAIN).
func checkBaseArgs(t *testing.T, path string, stages []Stage) {
	t.Helper()
	args, err := GlobalArgs(path)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, st := range stages {
		if !names[st.BaseArg] && !regexp.MustCompile(`^\$\{[A-Z_]+\}$`).MatchString(st.BaseArg) {
			t.Errorf("%s: FROM %s is not a build argument", filepath.Base(path), st.BaseArg)
		}
		if strings.Contains(st.Base, "$") || strings.Contains(st.Base, "alpine") {
			t.Errorf("%s: base %q (default missing or Alpine)", filepath.Base(path), st.Base)
		}
		names[st.Name] = true
	}
	goVersion := strings.TrimPrefix(versionsEnv(t)["IMAGES_GO_TOOLCHAIN"], "go")
	if want := "golang:" + goVersion + "-" + versionsEnv(t)["IMAGES_DEBIAN_SUITE"]; goVersion == "" || args["GO_IMAGE"] != want || stages[0].Base != want {
		t.Errorf("%s: GO_IMAGE %q, first stage %q, want %s (IMAGES_GO_TOOLCHAIN)", filepath.Base(path), args["GO_IMAGE"], stages[0].Base, want)
	}
}

// agentPackages reads the agent base's --include list from hack/images.sh.
func agentPackages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "hack", "images.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)recipe_agent\(\) \{.*?--include=([a-z0-9.+,-]+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("hack/images.sh: no --include in recipe_agent")
	}
	pkgs := strings.Split(string(m[1]), ",")
	if !containsWord(strings.Join(pkgs, " "), "buildah") {
		t.Fatalf("hack/images.sh's agent base lacks buildah: %v", pkgs)
	}
	return pkgs
}

func TestParseJoinsContinuationsAndSkipsComments(t *testing.T) {
	path := filepath.Join("testdata", "sample.Dockerfile")
	stages, err := Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "build" || stages[0].Base != "golang:1" || stages[1].Base != "scratch" || stages[1].BaseArg != "${BASE}" {
		t.Fatalf("stages = %+v", stages)
	}
	runs := stages[0].Find("RUN")
	if len(runs) != 1 || runs[0].Args != "a && b && c" || runs[0].Line != 5 {
		t.Fatalf("RUN = %+v", runs)
	}
	args, err := GlobalArgs(path)
	if err != nil || len(args) != 2 || args["X"] != "1" || args["BASE"] != "scratch" {
		t.Fatalf("args = %v, %v", args, err)
	}
}

func TestParseRejectsInstructionsBeforeFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(path, []byte("RUN x\nFROM scratch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(path); err == nil || !strings.Contains(err.Error(), "RUN before FROM") {
		t.Fatalf("err = %v", err)
	}
	if err := os.WriteFile(path, []byte("FROM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(path); err == nil || !strings.Contains(err.Error(), "FROM without an image") {
		t.Fatalf("err = %v", err)
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
