// Command genartifacts writes artifacts/interpreter, artifacts/agent and
// artifacts/controller from charts/stateshift,
// so the chart is the one source of truth and the plain YAML for kubectl
// users follows it; with -check it only reports whether the files are
// current (make verify).
//
//	go run ./test/chart/genartifacts [-check]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stateshift/stateshift/test/chart"
)

// target is one folder of artifacts/ and how objects are filed into it.
type target struct {
	name   string
	dir    string
	values string
	// files maps a kind to its file; the order of kinds is the order of
	// documents inside a file.
	files []route
	// skip leaves objects out that other folders hold.
	skip func(u *unstructured.Unstructured) bool
	// notes are file headers after the generated-by line.
	notes map[string]string
}

// route files objects of a kind (whose name starts with prefix, when
// given) into file; the first matching route wins.
type route struct{ kind, prefix, file string }

// fromSecurity tells the objects the chart renders from its copy of
// artifacts/security (templates/karmada/_security.tpl): artifacts/security
// is their source, so no other folder holds them.
func fromSecurity(u *unstructured.Unstructured) bool {
	switch u.GetKind() {
	case "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		return true
	case "ClusterRole":
		return u.GetName() == "stateshift-view" || u.GetName() == "stateshift-edit"
	case "ConfigMap":
		return u.GetName() == "stateshift-checkpoint-creators"
	}
	return false
}

var rbacKinds = map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}

var targets = []target{{
	name:   "interpreter",
	dir:    "artifacts/interpreter",
	values: "charts/stateshift/ci/artifacts-values.yaml",
	files: []route{
		{"Namespace", "", "namespace.yaml"},
		{"ServiceAccount", "", "rbac.yaml"},
		{"Deployment", "", "deployment.yaml"},
		{"PodDisruptionBudget", "", "deployment.yaml"},
		{"Service", "", "service.yaml"},
		{"ResourceInterpreterWebhookConfiguration", "", "webhook-configuration.yaml"},
	},
	// CRDs are artifacts/crds (controller-gen); the controller's RBAC in
	// the Karmada API is artifacts/controller.
	skip: func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "CustomResourceDefinition" || (chart.ForKarmada(u) && rbacKinds[u.GetKind()])
	},
	notes: map[string]string{
		"namespace.yaml": "The namespace, on the host cluster and in the Karmada API.",
		"rbac.yaml": "Host identities of the webhook and the controller (no tokens: neither talks to the\n" +
			"host API). Applied to the Karmada API too, the interpreter's ServiceAccount is the\n" +
			"identity artifacts/controller binds.",
		"deployment.yaml": "The interpreter webhook (2 replicas, PDB, spread) and the migration controller (the\n" +
			"same binary with the Karmada API kubeconfig from the Secret karmada-kubeconfig,\n" +
			"leader election on). Certificates: hack/apply-interpreter-config.sh --service\n" +
			"stateshift-system/stateshift-interpreter-webhook makes the Secret.",
		"service.yaml":               "Karmada reaches the webhook pods through this Service.",
		"webhook-configuration.yaml": "For the Karmada API. caBundle: filled by hack/apply-interpreter-config.sh.",
	},
}, {
	name:   "agent",
	dir:    "artifacts/agent",
	values: "charts/stateshift/ci/artifacts-members-values.yaml",
	files: []route{
		{"Namespace", "", "namespace.yaml"},
		{"DaemonSet", "", "daemonset.yaml"},
		{"ServiceAccount", "stateshift-checkpoint-agent", "rbac.yaml"},
		{"ClusterRole", "stateshift-checkpoint-agent", "rbac.yaml"},
		{"ClusterRole", "stateshift-metrics-reader", "rbac.yaml"},
		{"ClusterRoleBinding", "stateshift-checkpoint-agent", "rbac.yaml"},
		{"Role", "stateshift-checkpoint-agent", "rbac.yaml"},
		{"RoleBinding", "stateshift-checkpoint-agent", "rbac.yaml"},
		{"ServiceAccount", "stateshift-pod-restore", "pod-restore-rbac.yaml"},
		{"ClusterRole", "stateshift-pod-restore", "pod-restore-rbac.yaml"},
		{"ClusterRoleBinding", "stateshift-pod-restore", "pod-restore-rbac.yaml"},
		{"Deployment", "stateshift-pod-restore", "pod-restore.yaml"},
		{"Service", "stateshift-pod-restore", "pod-restore.yaml"},
		{"PodDisruptionBudget", "stateshift-pod-restore", "pod-restore.yaml"},
		{"MutatingWebhookConfiguration", "", "pod-restore-webhook.yaml"},
	},
	// The member parts only, without the controller's member RBAC.
	skip: func(u *unstructured.Unstructured) bool {
		if u.GetKind() == "Namespace" {
			return !chart.ForKarmada(u)
		}
		return u.GetLabels()["stateshift.io/deliver-to-members"] != "true" || u.GetKind() == "CustomResourceDefinition" ||
			strings.HasPrefix(u.GetName(), "stateshift-impersonate-") || strings.HasPrefix(u.GetName(), "stateshift-migration-controller")
	},
	notes: map[string]string{
		"namespace.yaml": "The namespace of the member parts, in every member cluster.",
		"daemonset.yaml": "The checkpoint agent, one per node of every member cluster (kubectl apply in each\n" +
			"member, or let the chart's ClusterPropagationPolicy deliver it).",
		"rbac.yaml": "Least privilege for the agent: create on nodes/checkpoint, its node's pods, Checkpoints\n" +
			"and their status, Events, and get on the registry Secrets named in resourceNames only;\n" +
			"TokenReviews and SubjectAccessReviews to check who scrapes its metrics, and the\n" +
			"ClusterRole stateshift-metrics-reader to bind a scraper to.",
		"pod-restore-rbac.yaml": "Least privilege for the pod-restore webhook: it reads the metadata of the workload\n" +
			"creating a restored pod, watches the metadata of Deployments and StatefulSets, and\n" +
			"updates only its own webhook configuration (by name), to list the completed restores.",
		"pod-restore.yaml": "The pod-restore webhook (checkpoint-agent pod-restore-webhook): gives each pod of a\n" +
			"restored workload its checkpoint images (a StatefulSet pod its own), keeps a restore\n" +
			"to once, and refuses a checkpoint image taken in another namespace (it reads the\n" +
			"image's manifest).",
		"pod-restore-webhook.yaml": "Registers the pod-restore webhook with a member's API server. Apply with\n" +
			"hack/apply-interpreter-config.sh --webhook pod-restore, which fills clientConfig and caBundle.",
	},
}, {
	name:   "controller",
	dir:    "artifacts/controller",
	values: "charts/stateshift/ci/artifacts-members-values.yaml",
	files: []route{
		{"ClusterRole", "stateshift-impersonate-", "member-rbac.yaml"},
		{"ClusterRoleBinding", "stateshift-impersonate-", "member-rbac.yaml"},
		{"ClusterRole", "stateshift-migration-controller-pods", "member-rbac.yaml"},
		{"ClusterRoleBinding", "stateshift-migration-controller-pods", "member-rbac.yaml"},
		{"ServiceAccount", "", "rbac.yaml"},
		{"ClusterRole", "", "rbac.yaml"},
		{"ClusterRoleBinding", "", "rbac.yaml"},
		{"Role", "", "rbac.yaml"},
		{"RoleBinding", "", "rbac.yaml"},
	},
	skip: func(u *unstructured.Unstructured) bool {
		return !chart.ForKarmada(u) || !rbacKinds[u.GetKind()] ||
			(u.GetLabels()["stateshift.io/deliver-to-members"] == "true" &&
				!strings.HasPrefix(u.GetName(), "stateshift-impersonate-") && !strings.HasPrefix(u.GetName(), "stateshift-migration-controller"))
	},
	notes: map[string]string{
		"rbac.yaml": "The migration controller's rights in the Karmada API, bound to the\n" +
			"stateshift-interpreter-webhook ServiceAccount there (the identity of the\n" +
			"kubeconfig it runs with): CheckpointPolicies, Migrations, Checkpoints, bindings,\n" +
			"policies, the cluster proxy; its Lease, Events and the registry Secrets.",
		"member-rbac.yaml": "Apply to every member cluster: Karmada's cluster proxy impersonates the\n" +
			"controller's user and groups there, and the controller reads pods (get, list,\n" +
			"watch) of protected workloads and, with --checkpoint-delivery=proxy (the\n" +
			"default), writes and watches the copies of Checkpoints. Karmada delivers these\n" +
			"itself when the chart installs.",
	},
}}

// plain is a document as helm rendered it (comments, flow style: what
// hack/apply-interpreter-config.sh edits) without helm's "# Source:" lines
// and the labels that say helm installed it, which is not true of the
// plain YAML.
func plain(raw []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "# Source: ") || strings.HasPrefix(t, "helm.sh/chart: ") || strings.HasPrefix(t, "app.kubernetes.io/managed-by: ") {
			continue
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	return b.Bytes()
}

func main() {
	check := flag.Bool("check", false, "only report whether the files are current")
	only := flag.String("targets", "all", `comma-separated folders of artifacts/ to write (interpreter, agent, controller), or "all"`)
	out := flag.String("out", "", "write under this folder instead of the repository (a preview)")
	set := flag.String("set", "", "chart values to render with, as helm's --set (with -out only: the repository's artifacts are the defaults')")
	flag.Parse()
	if *set != "" && *out == "" {
		fmt.Fprintln(os.Stderr, "genartifacts: -set needs -out")
		os.Exit(2)
	}
	extraArgs = nil
	if *set != "" {
		extraArgs = []string{"--set", *set}
	}
	if err := run(*check, *only, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genartifacts:", err)
		os.Exit(1)
	}
}

func run(check bool, only, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var stale []string
	for _, t := range targets {
		if !want["all"] && !want[t.name] {
			continue
		}
		if out != "" {
			t.dir = filepath.Join(out, t.dir)
		}
		files, err := render(ctx, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t.dir, err)
		}
		s, err := write(t, files, check)
		if err != nil {
			return err
		}
		stale = append(stale, s...)
	}
	if check && len(stale) > 0 {
		return fmt.Errorf("stale, run 'make artifacts' and commit: %s", strings.Join(stale, ", "))
	}
	return nil
}

// extraArgs are more helm template arguments (-set).
var extraArgs []string

// render returns file name -> content.
func render(ctx context.Context, t target) (map[string][]byte, error) {
	docs, err := chart.TemplateDocs(ctx, append([]string{"-f", filepath.Join(chart.Root(), t.values)}, extraArgs...)...)
	if err != nil {
		return nil, err
	}
	routeOf := func(u *unstructured.Unstructured) (int, string, bool) {
		for i, r := range t.files {
			if r.kind == u.GetKind() && strings.HasPrefix(u.GetName(), r.prefix) {
				return i, r.file, true
			}
		}
		return 0, "", false
	}
	byFile := map[string][]chart.Doc{}
	seen := map[string]bool{}
	// Host objects first: of a duplicate (the namespace is rendered for
	// both APIs) the host one is kept.
	sort.SliceStable(docs, func(i, j int) bool { return !chart.ForKarmada(docs[i].Object) && chart.ForKarmada(docs[j].Object) })
	for _, d := range docs {
		u := d.Object
		if t.skip(u) || fromSecurity(u) {
			continue
		}
		_, file, ok := routeOf(u)
		if !ok {
			return nil, fmt.Errorf("the chart renders a %s (%s) that no file of %s takes: add a route", u.GetKind(), u.GetName(), t.dir)
		}
		key := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
		if seen[key] {
			continue
		}
		seen[key] = true
		byFile[file] = append(byFile[file], d)
	}
	out := map[string][]byte{}
	for file, list := range byFile {
		sort.SliceStable(list, func(i, j int) bool {
			a, b := list[i].Object, list[j].Object
			ra, _, _ := routeOf(a)
			rb, _, _ := routeOf(b)
			if ra != rb {
				return ra < rb
			}
			return a.GetName() < b.GetName()
		})
		var b bytes.Buffer
		fmt.Fprintf(&b, "# Generated by `make artifacts` from charts/stateshift with %s.\n# Do not edit: change the chart.\n", t.values)
		for _, line := range strings.Split(t.notes[file], "\n") {
			if line != "" {
				fmt.Fprintf(&b, "# %s\n", line)
			}
		}
		for i, d := range list {
			if i > 0 {
				b.WriteString("---\n")
			}
			b.Write(plain(d.Raw))
		}
		out[file] = b.Bytes()
	}
	return out, nil
}

// write writes the files (or, with check, compares them) and returns the
// stale paths; files of the folder that the chart no longer renders are
// stale too.
func write(t target, files map[string][]byte, check bool) ([]string, error) {
	dir := t.dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(chart.Root(), dir)
	}
	var stale []string
	existing, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, path := range existing {
		if _, ok := files[filepath.Base(path)]; !ok {
			stale = append(stale, filepath.Join(t.dir, filepath.Base(path)))
			if !check {
				if err := os.Remove(path); err != nil {
					return nil, err
				}
			}
		}
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		old, err := os.ReadFile(path)
		if err == nil && bytes.Equal(old, content) {
			continue
		}
		stale = append(stale, filepath.Join(t.dir, name))
		if !check {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, content, 0o644); err != nil {
				return nil, err
			}
		}
	}
	sort.Strings(stale)
	return stale, nil
}
