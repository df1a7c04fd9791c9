package stateshiftctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// staleAfterIntervals is how many schedule intervals a checkpoint may age
// before `status` calls the workload stale: the controller's Protected
// condition and the chart's alert use the same.
const staleAfterIntervals = v1alpha1.StaleIntervals

// WorkloadStatus is one protected workload on one cluster: what a failover
// from that cluster would restore, and how old it is.
type WorkloadStatus struct {
	Namespace string `json:"namespace"`
	Policy    string `json:"policy"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Cluster   string `json:"cluster"`
	Armed     bool   `json:"armed"`
	// State is Protected, Failing, Stale, Unarmed or NoCheckpoint; Reason
	// says why.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Pods and their latest verified checkpoints on this cluster.
	Pods []v1alpha1.PodCheckpointRef `json:"pods,omitempty"`
	// CheckpointAge is the age of the oldest of the pods' latest verified
	// checkpoints: the data-loss window of a failover now.
	CheckpointAge *time.Duration `json:"checkpointAge,omitempty"`
	Interval      time.Duration  `json:"interval"`
	LastMigration string         `json:"lastMigration,omitempty"`
	// LastMigrationPhase and its time, when there was one.
	LastMigrationPhase v1alpha1.MigrationPhase `json:"lastMigrationPhase,omitempty"`
	LastMigrationTime  time.Time               `json:"lastMigrationTime,omitempty"`
}

type statusOptions struct {
	allNamespaces bool
	output        string
	timeout       time.Duration
}

func newStatusCommand(s *Streams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [KIND/NAME]",
		Short: "Per protected workload and cluster: armed or not and why, checkpoint age against the schedule, last move",
		Example: `  kubectl stateshift status -n shop
  kubectl stateshift status statefulset/db -n shop -o wide
  kubectl stateshift status -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var only *v1alpha1.WorkloadReference
			if len(args) == 1 {
				ref, err := parseWorkload(args[0])
				if err != nil {
					return err
				}
				only = &ref
			}
			c, ns, err := newClient(flags)
			if err != nil {
				return err
			}
			if o.allNamespaces {
				ns = ""
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			rows, err := WorkloadStatuses(ctx, c, ns, only, time.Now())
			if err != nil {
				return err
			}
			if only != nil && len(rows) == 0 {
				return fmt.Errorf("%s %s is not selected by any CheckpointPolicy in namespace %q", only.Kind, only.Name, ns)
			}
			return printWorkloadStatuses(s.Out, o.output, rows, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every namespace")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// WorkloadStatuses reads the CheckpointPolicies' status and the Migrations
// of namespace ("" for all) and returns one row per workload and cluster.
func WorkloadStatuses(ctx context.Context, c client.Client, namespace string, only *v1alpha1.WorkloadReference, now time.Time) ([]WorkloadStatus, error) {
	policies := &v1alpha1.CheckpointPolicyList{}
	if err := c.List(ctx, policies, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list CheckpointPolicies: %w", err)
	}
	migrations := &v1alpha1.MigrationList{}
	if err := c.List(ctx, migrations, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list Migrations: %w", err)
	}
	var rows []WorkloadStatus
	for i := range policies.Items {
		p := &policies.Items[i]
		for _, w := range p.Status.Workloads {
			if only != nil && (w.Kind != only.Kind || w.Name != only.Name) {
				continue
			}
			last := lastMigration(migrations.Items, p.Namespace, w.Kind, w.Name)
			for _, cluster := range clustersOf(w) {
				row := workloadRow(p, w, cluster, now)
				if last != nil {
					row.LastMigration, row.LastMigrationPhase, row.LastMigrationTime = last.Name, last.Status.Phase, last.CreationTimestamp.Time
				}
				rows = append(rows, row)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		return a.Namespace+"/"+a.Kind+"/"+a.Name+"/"+a.Cluster < b.Namespace+"/"+b.Kind+"/"+b.Name+"/"+b.Cluster
	})
	return rows, nil
}

// clustersOf lists the clusters a workload runs on, and those its pods
// were checkpointed on, so a cluster mid-move still shows.
func clustersOf(w v1alpha1.ProtectedWorkload) []string {
	seen := map[string]bool{}
	var out []string
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, c := range w.Clusters {
		add(c)
	}
	for _, p := range w.Pods {
		add(p.Cluster)
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// workloadRow judges one workload on one cluster.
func workloadRow(p *v1alpha1.CheckpointPolicy, w v1alpha1.ProtectedWorkload, cluster string, now time.Time) WorkloadStatus {
	row := WorkloadStatus{
		Namespace: p.Namespace, Policy: p.Name, Kind: w.Kind, Name: w.Name, Cluster: cluster,
		Armed: w.Armed, Interval: p.Spec.Schedule.Interval.Duration,
	}
	var oldest *time.Time
	for _, pod := range w.Pods {
		if pod.Cluster != cluster || pod.CompletionTime == nil {
			continue
		}
		row.Pods = append(row.Pods, pod)
		if t := pod.CompletionTime.Time; oldest == nil || t.Before(*oldest) {
			oldest = &t
		}
	}
	if oldest != nil {
		a := now.Sub(*oldest)
		row.CheckpointAge = &a
	}
	failing := meta.FindStatusCondition(w.Conditions, v1alpha1.ConditionProtected)
	switch {
	case failing != nil && failing.Reason == v1alpha1.ProtectedReasonFailing:
		row.State, row.Reason = "Failing", failing.Message
	case !w.Armed:
		row.State, row.Reason = "Unarmed", orDash(w.Message)
	case row.CheckpointAge == nil:
		row.State, row.Reason = "NoCheckpoint", "no verified checkpoint of a pod on this cluster"
	case row.Interval > 0 && *row.CheckpointAge > staleAfterIntervals*row.Interval:
		row.State = "Stale"
		row.Reason = fmt.Sprintf("latest verified checkpoint is %s old, schedule is every %s", row.CheckpointAge.Round(time.Second), row.Interval)
	default:
		row.State = "Protected"
	}
	return row
}

// lastMigration is the newest Migration of a workload.
func lastMigration(ms []v1alpha1.Migration, namespace, kind, name string) *v1alpha1.Migration {
	var last *v1alpha1.Migration
	for i := range ms {
		m := &ms[i]
		if m.Namespace != namespace || m.Spec.WorkloadRef.Kind != kind || m.Spec.WorkloadRef.Name != name {
			continue
		}
		if last == nil || last.CreationTimestamp.Before(&m.CreationTimestamp) {
			last = m
		}
	}
	return last
}

func printWorkloadStatuses(w io.Writer, format string, rows []WorkloadStatus, now time.Time) error {
	if done, err := printStructured(w, format, rows); done {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No protected workloads found.")
		return err
	}
	t := newTable(w)
	header := "NAMESPACE\tWORKLOAD\tCLUSTER\tSTATE\tCHECKPOINT AGE\tSCHEDULE\tLAST MIGRATION\tREASON"
	if format == outputWide {
		header += "\tPOLICY\tIMAGES"
	}
	_, _ = fmt.Fprintln(t, header)
	for _, r := range rows {
		ckptAge := "-"
		if r.CheckpointAge != nil {
			ckptAge = r.CheckpointAge.Round(time.Second).String()
		}
		mig := "-"
		if r.LastMigration != "" {
			mig = fmt.Sprintf("%s %s (%s ago)", r.LastMigration, orDash(string(r.LastMigrationPhase)), age(now, r.LastMigrationTime))
		}
		line := fmt.Sprintf("%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Namespace, strings.ToLower(r.Kind), r.Name, orDash(r.Cluster),
			r.State, ckptAge, r.Interval, mig, orDash(r.Reason))
		if format == outputWide {
			var images []string
			for _, p := range r.Pods {
				for _, ctr := range sortedKeys(p.Images) {
					images = append(images, p.Pod+"/"+ctr+"="+p.Images[ctr])
				}
			}
			line += "\t" + r.Policy + "\t" + orDash(strings.Join(images, ","))
		}
		_, _ = fmt.Fprintln(t, line)
	}
	return t.Flush()
}
