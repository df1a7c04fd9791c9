package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/stateshift/stateshift/test/nodesim"
)

// Main parses args, runs the node until ctx ends and returns the exit code.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("nodesim", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	o := NewOptions()
	o.AddFlags(fs)
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	defer klog.Flush()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(stderr, "nodesim: %v\n", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, o *Options) error {
	cfg, err := o.Config()
	if err != nil {
		return err
	}
	n, err := nodesim.New(cfg)
	if err != nil {
		return err
	}
	if o.CAFileOut != "" {
		if err := os.WriteFile(o.CAFileOut, n.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("--ca-file-out: %w", err)
		}
	}
	ctx = klog.NewContext(ctx, klog.Background())
	go func() {
		select {
		case <-n.Ready():
			klog.InfoS("Node ready", "node", n.Name(), "endpoint", n.Endpoint(), "caFile", n.CAFile(), "checkpointDir", n.CheckpointDir())
		case <-ctx.Done():
		}
	}()
	return n.Run(ctx)
}
