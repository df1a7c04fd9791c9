// Package stateshiftctl is the kubectl-stateshift plugin: it tells an
// operator what stateshift protects and does the few things an operator
// asks of it (move, checkpoint), against the Karmada API with kubectl's own
// flags.
package stateshiftctl

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

// Streams are the plugin's standard input, output and error.
type Streams = genericiooptions.IOStreams

// NewCommand is `kubectl stateshift`. The kubeconfig flags are kubectl's
// (--kubeconfig, --context, -n ...), and point at the Karmada API.
func NewCommand(s *Streams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "kubectl-stateshift",
		Short: "Inspect and operate stateshift: protected workloads, checkpoints and moves",
		Long: `kubectl stateshift talks to the Karmada API (the kubeconfig and context you
give, as kubectl does) and reads the member clusters through Karmada's
cluster proxy where it needs them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetOut(s.Out)
	cmd.SetErr(s.ErrOut)
	cmd.AddCommand(
		newInspectCommand(s),
		newDescribeCommand(s, flags),
		newMoveCommand(s, flags),
		newStatusCommand(s, flags),
		newCheckpointCommand(s, flags),
		newDoctorCommand(s, flags),
	)
	return cmd
}

// Output formats every command accepts; "" is the command's table.
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

func addOutputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", outputTable, "output format: wide, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outputWide, outputJSON, outputYAML}, cobra.ShellCompDirectiveNoFileComp
	})
}

// printStructured prints v as JSON or YAML and reports whether the format
// was one of those.
func printStructured(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case outputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintln(w, string(b))
		return true, err
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(b)
		return true, err
	case outputTable, outputWide:
		return false, nil
	default:
		return true, fmt.Errorf("unknown output format %q: use wide, json or yaml", format)
	}
}
