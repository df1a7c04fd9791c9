// Package chart renders charts/stateshift with the helm CLI (built and
// cached by hack/build-deps.sh helm, outside stateshift's go.mod) and
// splits the output into objects: for the chart's tests and for the
// generator of artifacts/ (genartifacts).
package chart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Root is the repository's top folder.
func Root() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "charts", "stateshift", "Chart.yaml")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// ChartDir is charts/stateshift.
func ChartDir() string { return filepath.Join(Root(), "charts", "stateshift") }

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// Helm returns the cached helm binary, building it on first use (a test
// that needs it builds it rather than skipping).
func Helm() (string, error) {
	helmOnce.Do(func() {
		build := exec.Command("bash", filepath.Join(Root(), "hack", "build-deps.sh"), "helm")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if helmErr = build.Run(); helmErr != nil {
			helmErr = fmt.Errorf("hack/build-deps.sh helm: %w", helmErr)
			return
		}
		out, err := exec.Command("bash", "-c", ". "+filepath.Join(Root(), "hack", "lib.sh")+` && echo "${TOOLS_BIN}/helm-${HELM_VERSION}"`).Output()
		if err != nil {
			helmErr = fmt.Errorf("locate helm: %w", err)
			return
		}
		helmPath = strings.TrimSpace(string(out))
	})
	return helmPath, helmErr
}

var readChartOnce sync.Once

// readChart reads every file of the chart in this process: go test caches
// results by the files a test opens, and helm opens the chart in a child
// process it does not see. Without this a changed template could leave a
// cached "ok".
func readChart() {
	_ = filepath.WalkDir(ChartDir(), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_, _ = os.ReadFile(path)
		}
		return nil
	})
}

// Run runs helm with a deadline and returns its standard output.
func Run(ctx context.Context, args ...string) ([]byte, error) {
	readChartOnce.Do(readChart)
	bin, err := Helm()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// helm keeps its caches and config under HOME: a fresh folder keeps
	// runs from sharing repositories or plugins.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+os.TempDir()+"/stateshift-helm-cache",
		"HELM_CONFIG_HOME="+os.TempDir()+"/stateshift-helm-config", "HELM_DATA_HOME="+os.TempDir()+"/stateshift-helm-data")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Template renders the chart as release "stateshift" in namespace
// stateshift-system with the given extra helm arguments (--set, -f).
func Template(ctx context.Context, extra ...string) ([]*unstructured.Unstructured, error) {
	args := append([]string{"template", "stateshift", ChartDir(), "--namespace", "stateshift-system"}, extra...)
	out, err := Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return Split(out)
}

// Split parses a multi-document YAML stream into objects, skipping empty
// documents.
func Split(b []byte) ([]*unstructured.Unstructured, error) {
	docs, err := SplitDocs(b)
	if err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, len(docs))
	for i, d := range docs {
		out[i] = d.Object
	}
	return out, nil
}

// Doc is one rendered document: the object and its text as helm wrote it
// (comments and flow style included).
type Doc struct {
	Object *unstructured.Unstructured
	Raw    []byte
}

// TemplateDocs is Template keeping each document's text.
func TemplateDocs(ctx context.Context, extra ...string) ([]Doc, error) {
	args := append([]string{"template", "stateshift", ChartDir(), "--namespace", "stateshift-system"}, extra...)
	out, err := Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return SplitDocs(out)
}

// SplitDocs is Split keeping each document's text.
func SplitDocs(b []byte) ([]Doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []Doc
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%w in:\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document without kind or name:\n%s", doc)
		}
		out = append(out, Doc{Object: u, Raw: doc})
	}
}

// ForKarmada says whether an object belongs in the Karmada API (the
// chart labels those with stateshift.io/release).
func ForKarmada(u *unstructured.Unstructured) bool {
	_, ok := u.GetLabels()["stateshift.io/release"]
	return ok
}
