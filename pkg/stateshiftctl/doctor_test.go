package stateshiftctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	agentdoctor "github.com/stateshift/stateshift/pkg/agent/doctor"
	"github.com/stateshift/stateshift/test/testenv"
)

// shippedDaemonSet is artifacts/agent/daemonset.yaml: the doctor must run
// with the flags the real DaemonSet gives the agent.
func shippedDaemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "artifacts", "agent", "daemonset.yaml"))
	must(t, err)
	ds := &appsv1.DaemonSet{}
	must(t, yaml.Unmarshal(b, ds))
	return ds
}

func runningAgent(t *testing.T, c client.Client, name, node string, labels map[string]string) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "stateshift-system", Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "agent", Image: "checkpoint-agent"}}}}
	must(t, c.Create(t.Context(), p))
	p.Status.Phase = corev1.PodRunning
	must(t, c.Status().Update(t.Context(), p))
}

// TestDoctorRunsTheDaemonSetsFlagsOnEveryMember: through the cluster
// proxy, one agent pod per member (every pod with --all-nodes) runs
// `checkpoint-agent doctor` with the DaemonSet's flags; a member without
// agents is a FAIL row, not an error that hides the others. The exec is
// played here (envtest runs no kubelet): what the agent prints is the
// real doctor.Print format.
func TestDoctorRunsTheDaemonSetsFlagsOnEveryMember(t *testing.T) {
	control := testenv.Start(t, testenv.Options{ExtraCRDDirs: []string{filepath.Join(testenv.Root(), "test", "crds", "karmada-cluster")}})
	member1, member2 := testenv.Start(t), testenv.Start(t)
	member1.Namespace(t, "stateshift-system")
	ds := shippedDaemonSet(t)
	must(t, member1.Client.Create(t.Context(), ds))
	runningAgent(t, member1.Client, "agent-b", "node-b", ds.Spec.Template.Labels)
	runningAgent(t, member1.Client, "agent-a", "node-a", ds.Spec.Template.Labels)
	kubeconfig := karmadaFront(t, control.Config, map[string]*rest.Config{"member1": member1.Config, "member2": member2.Config})
	front, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	must(t, err)

	var argvs [][]string
	fake := func(_ context.Context, cluster string, pod *corev1.Pod, container string, argv []string) (string, error) {
		argvs = append(argvs, argv)
		var out bytes.Buffer
		agentdoctor.Print(&out, []agentdoctor.Result{{Name: "buildah", OK: true, Detail: "buildah version 1.28.2"},
			{Name: "kubelet", Detail: "401 Unauthorized from " + pod.Spec.NodeName, Fix: "enable --authentication-token-webhook"}})
		return out.String(), nil
	}
	d := doctor{opts: &doctorOptions{agentNamespace: "stateshift-system", daemonSet: "stateshift-checkpoint-agent", allNodes: true, repository: "registry.example/ckpt"},
		member: func(cluster string) (client.Client, error) { return proxyClient(front, cluster) }, exec: fake}
	rows := d.run(t.Context(), []string{"member1", "member2"})

	if len(rows) != 5 {
		t.Fatalf("rows %+v, want 2 checks x 2 agents + member2's", rows)
	}
	if r := rows[1]; r.Cluster != "member1" || r.Node != "node-a" || r.Pod != "agent-a" || r.Check != "kubelet" || r.OK ||
		!strings.Contains(r.Detail, "node-a") || r.Fix != "enable --authentication-token-webhook" {
		t.Errorf("node-a's kubelet row %+v", r)
	}
	if r := rows[4]; r.Cluster != "member2" || r.Check != "agents" || r.OK || !strings.Contains(r.Detail, "not found") {
		t.Errorf("member2 row %+v", r)
	}
	argv := argvs[0]
	if argv[1] != "doctor" || !slices.Contains(argv, "--checkpoint-dir=/var/lib/kubelet/checkpoints") || !slices.Contains(argv, "--work-dir=/run/stateshift/work") ||
		!slices.Contains(argv, "--repository=registry.example/ckpt") || slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, "$(") }) {
		t.Errorf("argv %v: want doctor with the DaemonSet's flags, none that needs $(VAR)", argv)
	}
	var table bytes.Buffer
	must(t, printDoctor(&table, outputWide, rows))
	for _, s := range []string{"CLUSTER", "member1  node-a", "kubelet", "FAIL", "enable --authentication-token-webhook", "member2"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}

	// The command itself, with the real exec through the proxy: envtest has
	// no kubelet, so member1's exec fails and says so, row by row.
	clusters, err := client.New(control.Config, client.Options{Scheme: scheme})
	must(t, err)
	c := &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}}
	must(t, clusters.Create(t.Context(), c))
	out, err := run(t, nil, "--kubeconfig", kubeconfig, "doctor", "--cluster", "member1", "--timeout", "30s")
	if err == nil || !strings.Contains(out, "member1") || !strings.Contains(out, "exec") || !strings.Contains(out, "FAIL") {
		t.Errorf("doctor without a kubelet: %v\n%s", err, out)
	}
	if _, err := run(t, nil, "--kubeconfig", kubeconfig, "doctor"); err == nil || !strings.Contains(err.Error(), "--all-members") {
		t.Errorf("doctor without a target: %v", err)
	}
}

func TestParseDoctor(t *testing.T) {
	var out bytes.Buffer
	agentdoctor.Print(&out, []agentdoctor.Result{{Name: "checkpoint folder", OK: true, Detail: "/var/lib/kubelet/checkpoints 0700"},
		{Name: "registry", Detail: "push denied", Fix: "give the Secret push rights"}})
	got := parseDoctor(out.String())
	if len(got) != 2 || got[0].Check != "checkpoint folder" || got[0].Detail != "/var/lib/kubelet/checkpoints 0700" || !got[0].OK || got[1].Check != "registry" || got[1].Detail != "push denied" || got[1].Fix != "give the Secret push rights" {
		t.Fatalf("%+v", got)
	}
}

// TestExecDetail: a failed exec says why, never "<nil>".
func TestExecDetail(t *testing.T) {
	for _, tc := range []struct {
		err  error
		out  string
		want string
	}{
		{errors.New("command terminated with exit code 1"), "", "command terminated with exit code 1"},
		{errors.New("forbidden"), "no such pod\n", "forbidden: no such pod"},
		{nil, "", "the doctor printed nothing"},
		{nil, "garbage", "no doctor lines in: garbage"},
	} {
		if got := execDetail(tc.err, tc.out); got != tc.want {
			t.Errorf("execDetail(%v, %q) = %q, want %q", tc.err, tc.out, got, tc.want)
		}
	}
}
