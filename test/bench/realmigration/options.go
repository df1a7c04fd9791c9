package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// Options are every knob of the benchmark.
type Options struct {
	// Runs is how many moves (each with its floor) the medians are taken over.
	Runs int
	// MiB is the state the process holds.
	MiB int
	// FloorOnly measures the floor alone: no local environment is needed.
	FloorOnly bool
	// CRIU is the criu program of the floor; the real nodes' runc uses the
	// same cached build.
	CRIU string
	// Registry receives the floor's blob: host:port, plain HTTP.
	Registry string
	// RunTimeout bounds one move, from the namespace's creation to the
	// restored process's answer.
	RunTimeout time.Duration
}

// AddFlags registers the options' flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.Runs, "runs", 3, "runs; the BENCH line holds the median of each field")
	fs.IntVar(&o.MiB, "mib", 256, "MiB of random bytes the process holds in memory")
	fs.BoolVar(&o.FloorOnly, "floor-only", false, "measure only the floor (criu dump + restore, blob upload + download); needs no local environment")
	fs.StringVar(&o.CRIU, "criu", "", "criu program of the floor (default: $CRIU_BIN/criu of hack/lib.sh, the build the real nodes use)")
	fs.StringVar(&o.Registry, "registry", framework.RegistryHost(), "registry (host:port, plain HTTP) for the floor's upload and download")
	fs.DurationVar(&o.RunTimeout, "run-timeout", 10*time.Minute, "deadline of one move")
}

// Complete fills in the defaults that need a look at the machine.
func (o *Options) Complete() error {
	if o.CRIU != "" {
		return nil
	}
	// hack/lib.sh knows the cache folder and the version (hack/versions.env).
	out, err := exec.Command("bash", "-c", `. "$1" && echo "${CRIU_BIN}"`, "bash",
		filepath.Join(framework.Root(), "hack", "lib.sh")).Output()
	if err != nil {
		return fmt.Errorf("read CRIU_BIN from hack/lib.sh: %w", err)
	}
	o.CRIU = filepath.Join(strings.TrimSpace(string(out)), "criu")
	return nil
}

// Validate says what is wrong with the options.
func (o *Options) Validate() error {
	var errs []error
	if o.Runs < 1 {
		errs = append(errs, fmt.Errorf("--runs %d: want at least 1", o.Runs))
	}
	if o.MiB < 1 {
		errs = append(errs, fmt.Errorf("--mib %d: want at least 1", o.MiB))
	}
	if o.RunTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--run-timeout %s: want a positive duration", o.RunTimeout))
	}
	if st, err := os.Stat(o.CRIU); err != nil || st.Mode()&0o111 == 0 {
		errs = append(errs, fmt.Errorf("--criu %s: not an executable (hack/build-deps.sh builds it): %v", o.CRIU, err))
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("criu dump and restore need root"))
	}
	return errors.Join(errs...)
}
