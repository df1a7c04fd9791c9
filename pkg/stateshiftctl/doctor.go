package stateshiftctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DoctorResult is one check of one agent.
type DoctorResult struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	Pod     string `json:"pod"`
	Check   string `json:"check"`
	OK      bool   `json:"ok"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// agentExec runs argv in an agent pod's container and returns its output;
// a non-zero exit is not an error (the doctor exits 1 when a check fails).
type agentExec func(ctx context.Context, cluster string, pod *corev1.Pod, container string, argv []string) (string, error)

type doctorOptions struct {
	agentNamespace, daemonSet string
	clusters                  []string
	allMembers, allNodes      bool
	repository, secret        string
	output                    string
	timeout                   time.Duration
}

func newDoctorCommand(s *Streams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor (--cluster NAME... | --all-members)",
		Short: "Run the checkpoint agent's doctor, with the DaemonSet's own flags, on members; one table",
		Long: `doctor execs "checkpoint-agent doctor" in an agent pod of each member (every
agent pod with --all-nodes) through Karmada's cluster proxy, with the flags the
DaemonSet gives the agent (so the checks use the real folders, storage and
kubelet settings), and prints every check of every agent in one table. It
needs create on pods/exec in the agents' namespace of each member, through
clusters/proxy in the Karmada API.`,
		Example: `  kubectl stateshift doctor --all-members
  kubectl stateshift doctor --cluster member1 --all-nodes --repository registry.example/ckpt/db --credentials-secret checkpoint-registry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd, s, flags, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.clusters, "cluster", nil, "member clusters to check")
	f.BoolVar(&o.allMembers, "all-members", false, "check every Ready member cluster")
	f.BoolVar(&o.allNodes, "all-nodes", false, "check every agent pod, not one per member")
	f.StringVar(&o.agentNamespace, "agent-namespace", "stateshift-system", "namespace of the agents on the members")
	f.StringVar(&o.daemonSet, "daemonset", "stateshift-checkpoint-agent", "the agents' DaemonSet")
	f.StringVar(&o.repository, "repository", "", "registry repository to check push access to")
	f.StringVar(&o.secret, "credentials-secret", "", "dockerconfigjson Secret in the agents' namespace to check against the registry")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func runDoctor(cmd *cobra.Command, s *Streams, flags *genericclioptions.ConfigFlags, o *doctorOptions) error {
	if o.allMembers == (len(o.clusters) > 0) {
		return errors.New("give --cluster NAME (repeatable) or --all-members")
	}
	c, _, err := newClient(flags)
	if err != nil {
		return err
	}
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	clusters := o.clusters
	if o.allMembers {
		if clusters, err = readyClusters(ctx, c); err != nil {
			return err
		}
	}
	d := doctor{opts: o, member: func(cluster string) (client.Client, error) { return proxyClient(cfg, cluster) },
		exec: proxyExec(cfg)}
	rows := d.run(ctx, clusters)
	if err := printDoctor(s.Out, o.output, rows); err != nil {
		return err
	}
	for _, r := range rows {
		if !r.OK {
			return errors.New("some checks failed")
		}
	}
	return nil
}

// doctor runs the agents' doctor on members.
type doctor struct {
	opts   *doctorOptions
	member func(cluster string) (client.Client, error)
	exec   agentExec
}

// run checks every cluster; what keeps a cluster from being checked is a
// row of its own ("agents"), not an error that hides the others.
func (d doctor) run(ctx context.Context, clusters []string) []DoctorResult {
	var rows []DoctorResult
	for _, cluster := range clusters {
		got, err := d.cluster(ctx, cluster)
		if err != nil {
			got = append(got, DoctorResult{Cluster: cluster, Check: "agents", Detail: err.Error(),
				Fix: "the agents' DaemonSet must run there, and you need get on it and create on pods/exec through clusters/proxy"})
		}
		rows = append(rows, got...)
	}
	return rows
}

// cluster runs the doctor in the agent pods of one member.
func (d doctor) cluster(ctx context.Context, cluster string) ([]DoctorResult, error) {
	c, err := d.member(cluster)
	if err != nil {
		return nil, err
	}
	ds := &appsv1.DaemonSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: d.opts.agentNamespace, Name: d.opts.daemonSet}, ds); err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s: %w", d.opts.agentNamespace, d.opts.daemonSet, err)
	}
	pods, err := agentPods(ctx, c, ds, d.opts.allNodes)
	if err != nil {
		return nil, err
	}
	container, argv := doctorArgv(ds, d.opts.repository, d.opts.secret)
	var rows []DoctorResult
	for i := range pods {
		out, err := d.exec(ctx, cluster, &pods[i], container, argv)
		got := parseDoctor(out)
		if err != nil || len(got) == 0 {
			got = append(got, DoctorResult{Check: "exec", Detail: execDetail(err, out),
				Fix: "the agent pod must run an agent image with the doctor subcommand"})
		}
		for j := range got {
			got[j].Cluster, got[j].Node, got[j].Pod = cluster, pods[i].Spec.NodeName, pods[i].Name
		}
		rows = append(rows, got...)
	}
	return rows, nil
}

// agentPods are the DaemonSet's Running pods, one (the first by node
// name) unless all.
func agentPods(ctx context.Context, c client.Client, ds *appsv1.DaemonSet, all bool) ([]corev1.Pod, error) {
	sel, err := metav1LabelSelector(ds)
	if err != nil {
		return nil, err
	}
	var l corev1.PodList
	if err := c.List(ctx, &l, client.InNamespace(ds.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("pods of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Running pod of DaemonSet %s/%s", ds.Namespace, ds.Name)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.NodeName < out[j].Spec.NodeName })
	if !all {
		out = out[:1]
	}
	return out, nil
}

func metav1LabelSelector(ds *appsv1.DaemonSet) (labels.Selector, error) {
	if ds.Spec.Selector == nil {
		return nil, fmt.Errorf("DaemonSet %s/%s has no selector", ds.Namespace, ds.Name)
	}
	return labels.ValidatedSelectorFromSet(ds.Spec.Selector.MatchLabels)
}

// doctorArgv is `checkpoint-agent doctor` with the DaemonSet container's
// own flags: the checks then look at the folders, storage and kubelet the
// agent really uses. Flags that take $(VAR) from the pod's environment
// are left out: exec does not expand them, and the agent reads the same
// variables ($NODE_NAME, $POD_NAMESPACE) as its defaults.
func doctorArgv(ds *appsv1.DaemonSet, repository, secret string) (string, []string) {
	c := ds.Spec.Template.Spec.Containers[0]
	for _, x := range ds.Spec.Template.Spec.Containers {
		if x.Name == "agent" {
			c = x
		}
	}
	bin := "checkpoint-agent"
	if len(c.Command) > 0 {
		bin = c.Command[0]
	}
	argv := []string{bin, "doctor"}
	for _, a := range c.Args {
		if !strings.Contains(a, "$(") {
			argv = append(argv, a)
		}
	}
	if repository != "" {
		argv = append(argv, "--repository="+repository)
	}
	if secret != "" {
		argv = append(argv, "--credentials-secret="+secret)
	}
	return c.Name, argv
}

// parseDoctor reads the doctor's lines: "OK    name detail", or
// "FAIL  name detail" followed by "      fix: ...".
func parseDoctor(out string) []DoctorResult {
	var rows []DoctorResult
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "OK    "), strings.HasPrefix(line, "FAIL  "):
			check, detail := doctorFields(line[6:])
			rows = append(rows, DoctorResult{Check: check, OK: strings.HasPrefix(line, "OK"), Detail: detail})
		case strings.HasPrefix(strings.TrimSpace(line), "fix: ") && len(rows) > 0:
			rows[len(rows)-1].Fix = strings.TrimPrefix(strings.TrimSpace(line), "fix: ")
		}
	}
	return rows
}

// doctorFields splits "name detail" as doctor.Print writes it: the name
// padded to 20 columns (names have spaces: "checkpoint folder").
func doctorFields(rest string) (string, string) {
	const width = 20
	if len(rest) > width && rest[width] == ' ' {
		return strings.TrimSpace(rest[:width]), strings.TrimSpace(rest[width+1:])
	}
	name, detail, _ := strings.Cut(rest, " ")
	return name, strings.TrimSpace(detail)
}

// proxyClient reaches a member through Karmada's cluster proxy (known
// kinds only: the proxy serves no discovery).
func proxyClient(cfg *rest.Config, cluster string) (client.Client, error) {
	m := rest.CopyConfig(cfg)
	m.Host = memberHost(cfg, cluster)
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, gvk := range []schema.GroupVersionKind{corev1.SchemeGroupVersion.WithKind("Pod"), appsV1("DaemonSet")} {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	return client.New(m, client.Options{Scheme: scheme, Mapper: mapper})
}

func memberHost(cfg *rest.Config, cluster string) string {
	return strings.TrimSuffix(cfg.Host, "/") + "/apis/cluster.karmada.io/v1alpha1/clusters/" + url.PathEscape(cluster) + "/proxy"
}

// proxyExec execs through Karmada's cluster proxy (SPDY, as kubectl exec).
func proxyExec(cfg *rest.Config) agentExec {
	return func(ctx context.Context, cluster string, pod *corev1.Pod, container string, argv []string) (string, error) {
		m := rest.CopyConfig(cfg)
		m.Host = memberHost(cfg, cluster)
		cs, err := kubernetes.NewForConfig(m)
		if err != nil {
			return "", err
		}
		req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdout: true, Stderr: true}, kscheme.ParameterCodec)
		ex, err := remotecommand.NewSPDYExecutor(m, "POST", req.URL())
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out})
		var exit exec.ExitError
		if errors.As(err, &exit) && out.Len() > 0 {
			err = nil // the doctor exits 1 when a check fails: its lines say which
		}
		return out.String(), err
	}
}

// execDetail says why an exec gave no doctor lines: its error and what it
// printed, or that it printed nothing.
func execDetail(err error, out string) string {
	out = strings.TrimSpace(out)
	switch {
	case err != nil && out != "":
		return fmt.Sprintf("%v: %s", err, out)
	case err != nil:
		return err.Error()
	case out == "":
		return "the doctor printed nothing"
	}
	return "no doctor lines in: " + out
}

func printDoctor(w io.Writer, format string, rows []DoctorResult) error {
	if done, err := printStructured(w, format, rows); done {
		return err
	}
	t := newTable(w)
	header := "CLUSTER\tNODE\tCHECK\tRESULT\tDETAIL"
	if format == outputWide {
		header += "\tPOD\tFIX"
	}
	_, _ = fmt.Fprintln(t, header)
	for _, r := range rows {
		result := "OK"
		if !r.OK {
			result = "FAIL"
		}
		line := strings.Join([]string{r.Cluster, orDash(r.Node), r.Check, result, r.Detail}, "\t")
		if format == outputWide {
			line += "\t" + orDash(r.Pod) + "\t" + orDash(r.Fix)
		}
		_, _ = fmt.Fprintln(t, line)
	}
	return t.Flush()
}
