package stateshiftctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TimelineEntry is one thing that happened to a Migration.
type TimelineEntry struct {
	Time time.Time `json:"time"`
	// Since is the time from the Migration's start.
	Since metav1.Duration `json:"since"`
	// Source says where the entry comes from: Phase, Condition or Event.
	Source  string `json:"source"`
	What    string `json:"what"`
	Message string `json:"message,omitempty"`
	Warning bool   `json:"warning,omitempty"`
}

// MigrationDescription is `describe migration`'s report.
type MigrationDescription struct {
	Name        string                         `json:"name"`
	Namespace   string                         `json:"namespace"`
	Workload    v1alpha1.WorkloadReference     `json:"workload"`
	Trigger     v1alpha1.MigrationTrigger      `json:"trigger"`
	Phase       v1alpha1.MigrationPhase        `json:"phase"`
	From        []string                       `json:"from,omitempty"`
	To          string                         `json:"to,omitempty"`
	Message     string                         `json:"message,omitempty"`
	Checkpoints []v1alpha1.MigrationCheckpoint `json:"checkpoints,omitempty"`
	Durations   v1alpha1.MigrationDurations    `json:"durations"`
	Timeline    []TimelineEntry                `json:"timeline"`
}

type describeOptions struct {
	output  string
	timeout time.Duration
}

func newDescribeCommand(s *Streams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &describeOptions{}
	cmd := &cobra.Command{
		Use:   "describe migration NAME",
		Short: "A Migration's timeline: phases, conditions and Events with their times",
		Example: `  kubectl stateshift describe migration shop-db-7f3k2 -n shop
  kubectl stateshift describe migration shop-db-7f3k2 -n shop -o yaml`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"migration"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind := strings.ToLower(args[0]); kind != "migration" && kind != "migrations" && kind != "mig" {
				return fmt.Errorf("describe knows migrations only, not %q", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			c, ns, err := newClient(flags)
			if err != nil {
				return err
			}
			d, err := DescribeMigration(ctx, c, ns, args[1])
			if err != nil {
				return err
			}
			return printMigrationDescription(s.Out, o.output, d)
		},
	}
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// DescribeMigration reads a Migration and its Events and orders what
// happened by time.
func DescribeMigration(ctx context.Context, c client.Client, namespace, name string) (*MigrationDescription, error) {
	m := &v1alpha1.Migration{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
		return nil, fmt.Errorf("migration %s/%s: %w", namespace, name, err)
	}
	events := &corev1.EventList{}
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "Migration"),
		fields.OneTermEqualSelector("involvedObject.name", name),
	)
	if err := c.List(ctx, events, client.InNamespace(namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("events of migration %s/%s: %w", namespace, name, err)
	}
	return &MigrationDescription{
		Name:        m.Name,
		Namespace:   m.Namespace,
		Workload:    m.Spec.WorkloadRef,
		Trigger:     m.Spec.Trigger,
		Phase:       m.Status.Phase,
		From:        m.Status.SourceClusters,
		To:          m.Status.DestinationCluster,
		Message:     m.Status.Message,
		Checkpoints: m.Status.Checkpoints,
		Durations:   m.Status.Durations,
		Timeline:    timeline(m, events.Items),
	}, nil
}

// timeline merges the Migration's recorded times, its conditions' last
// transitions and its Events, oldest first.
func timeline(m *v1alpha1.Migration, events []corev1.Event) []TimelineEntry {
	var entries []TimelineEntry
	add := func(t *metav1.Time, source, what, message string, warning bool) {
		if t == nil || t.IsZero() {
			return
		}
		entries = append(entries, TimelineEntry{Time: t.UTC(), Source: source, What: what, Message: message, Warning: warning})
	}
	add(&m.CreationTimestamp, "Phase", "Created", "", false)
	add(m.Status.StartTime, "Phase", "Started", strings.Join(m.Status.SourceClusters, ","), false)
	add(m.Status.ArmedTime, "Phase", "Armed", "restore plan in place", false)
	add(m.Status.RestoredTime, "Phase", "Restored", m.Status.DestinationCluster, false)
	add(m.Status.CompletionTime, "Phase", "Completed", string(m.Status.Phase), m.Status.Phase == v1alpha1.MigrationFailed)
	for _, c := range m.Status.Conditions {
		what := fmt.Sprintf("%s=%s", c.Type, c.Status)
		if c.Reason != "" {
			what += " (" + c.Reason + ")"
		}
		add(&c.LastTransitionTime, "Condition", what, c.Message, c.Status == metav1.ConditionFalse && c.Type != v1alpha1.ConditionFellBack)
	}
	for i := range events {
		e := &events[i]
		t := eventTime(e)
		what := e.Reason
		if e.Count > 1 {
			what = fmt.Sprintf("%s (x%d)", e.Reason, e.Count)
		}
		add(&t, "Event", what, e.Message, e.Type == corev1.EventTypeWarning)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Time.Before(entries[j].Time) })
	start := m.CreationTimestamp.Time
	if m.Status.StartTime != nil && m.Status.StartTime.Before(&m.CreationTimestamp) {
		start = m.Status.StartTime.Time
	}
	for i := range entries {
		entries[i].Since = metav1.Duration{Duration: entries[i].Time.Sub(start)}
	}
	return entries
}

// eventTime is when an Event last happened, whichever API wrote it: the
// events.k8s.io API sets eventTime, core/v1 recorders set the timestamps.
func eventTime(e *corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case !e.EventTime.IsZero():
		return metav1.Time{Time: e.EventTime.Time}
	default:
		return e.FirstTimestamp
	}
}

func printMigrationDescription(w io.Writer, format string, d *MigrationDescription) error {
	if done, err := printStructured(w, format, d); done {
		return err
	}
	t := newTable(w)
	_, _ = fmt.Fprintf(t, "Name:\t%s/%s\n", d.Namespace, d.Name)
	_, _ = fmt.Fprintf(t, "Workload:\t%s %s\n", d.Workload.Kind, d.Workload.Name)
	_, _ = fmt.Fprintf(t, "Trigger:\t%s\n", d.Trigger)
	_, _ = fmt.Fprintf(t, "Phase:\t%s\n", orDash(string(d.Phase)))
	_, _ = fmt.Fprintf(t, "From:\t%s\n", orDash(strings.Join(d.From, ",")))
	_, _ = fmt.Fprintf(t, "To:\t%s\n", orDash(d.To))
	_, _ = fmt.Fprintf(t, "Message:\t%s\n", orDash(d.Message))
	_, _ = fmt.Fprintf(t, "Took:\tcheckpoint %s, restore %s, total %s\n",
		durationOrDash(d.Durations.Checkpoint), durationOrDash(d.Durations.Restore), durationOrDash(d.Durations.Total))
	for _, cp := range d.Checkpoints {
		_, _ = fmt.Fprintf(t, "Checkpoint:\t%s (pod %s)\n", cp.Name, cp.Pod)
		if format == outputWide {
			for _, ctr := range sortedKeys(cp.Images) {
				_, _ = fmt.Fprintf(t, "  %s:\t%s\n", ctr, cp.Images[ctr])
			}
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(w, "\nTimeline:")
	t = newTable(w)
	_, _ = fmt.Fprintln(t, "  AT\tSINCE\tSOURCE\tWHAT\tMESSAGE")
	for _, e := range d.Timeline {
		mark := ""
		if e.Warning {
			mark = "! "
		}
		_, _ = fmt.Fprintf(t, "  %s\t+%s\t%s\t%s%s\t%s\n", e.Time.Format("15:04:05"), e.Since.Round(100*time.Millisecond), e.Source, mark, e.What, e.Message)
	}
	return t.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func durationOrDash(d *metav1.Duration) string {
	if d == nil {
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
