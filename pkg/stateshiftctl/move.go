package stateshiftctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

type moveOptions struct {
	to      string
	wait    bool
	timeout time.Duration
	output  string
}

func newMoveCommand(s *Streams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &moveOptions{}
	cmd := &cobra.Command{
		Use:   "move KIND/NAME --to CLUSTER",
		Short: "Move a protected workload to another member cluster with its process state",
		Long: `Creates a person's Migration: stateshift takes a fresh checkpoint on the
cluster that runs the workload, arms the restore and moves the workload to
CLUSTER, where its containers restore from the checkpoint. With --wait the
command follows the Migration's phases and fails unless it ends Restored.`,
		Example: `  kubectl stateshift move statefulset/db --to member2 -n shop --wait`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseWorkload(args[0])
			if err != nil {
				return err
			}
			if o.to == "" {
				return errors.New("--to CLUSTER is required")
			}
			c, ns, err := newClient(flags)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			m, err := CreateMove(ctx, c, ns, ref, o.to)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(s.Out, "migration %s/%s created: %s %s -> %s\n", m.Namespace, m.Name, ref.Kind, ref.Name, o.to)
			if !o.wait {
				return nil
			}
			m, err = FollowMigration(ctx, c, m, s.Out)
			if err != nil {
				return err
			}
			_, err = printStructured(s.Out, o.output, m)
			return err
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "destination member cluster")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "follow the Migration until it ends")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up waiting after this long (the Migration goes on)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "print the finished Migration as json or yaml (with --wait)")
	return cmd
}

// CreateMove creates a person's Migration of ref to cluster.
func CreateMove(ctx context.Context, c client.Client, namespace string, ref v1alpha1.WorkloadReference, cluster string) (*v1alpha1.Migration, error) {
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    namespace,
			GenerateName: strings.ToLower(ref.Name) + "-move-",
		},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        ref,
			DestinationCluster: cluster,
			Trigger:            v1alpha1.TriggerManual,
		},
	}
	if err := c.Create(ctx, m); err != nil {
		return nil, fmt.Errorf("create migration of %s %s/%s: %w", ref.Kind, namespace, ref.Name, err)
	}
	return m, nil
}

// finished reports whether a Migration's phase is final.
func finished(p v1alpha1.MigrationPhase) bool {
	return p == v1alpha1.MigrationRestored || p == v1alpha1.MigrationFellBack || p == v1alpha1.MigrationFailed
}

// FollowMigration prints a progress line whenever the Migration's phase or
// message changes, until it ends or ctx expires. It returns an error unless
// the Migration ends Restored.
func FollowMigration(ctx context.Context, c client.Client, m *v1alpha1.Migration, progress io.Writer) (*v1alpha1.Migration, error) {
	start := time.Now()
	key := client.ObjectKeyFromObject(m)
	err := follow(ctx, progress, func(ctx context.Context) (string, bool, error) {
		if err := c.Get(ctx, key, m); err != nil {
			return "", false, fmt.Errorf("migration %s: %w", key, err)
		}
		return fmt.Sprintf("%s: %s", orDash(string(m.Status.Phase)), m.Status.Message), finished(m.Status.Phase), nil
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return m, fmt.Errorf("migration %s still %s after %s (it goes on; follow it with `kubectl stateshift describe migration %s`)",
			key, orDash(string(m.Status.Phase)), time.Since(start).Round(time.Second), m.Name)
	case err != nil:
		return m, err
	case m.Status.Phase != v1alpha1.MigrationRestored:
		return m, fmt.Errorf("migration %s ended %s: %s", key, m.Status.Phase, m.Status.Message)
	}
	return m, nil
}
