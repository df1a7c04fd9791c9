package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/stateshift/stateshift/pkg/agent/archive"
	imagebuilder "github.com/stateshift/stateshift/pkg/agent/builder"
)

// Sweep removes what an agent that stopped mid-way (OOM kill, SIGKILL, node
// reboot) may have left on the node, before this agent starts any work:
// the archives its journal knows of (process memory), everything in the
// private work folder (auth files with registry credentials, extracted
// config.dump files, buildah's staging files) and buildah's working
// containers and images. A deferred delete never runs on SIGKILL; this does,
// on the next start.
type Sweep struct {
	Journal       *archive.Journal
	CheckpointDir string
	// WorkDir loses the entries stateshift names (workLeftovers).
	WorkDir string
	// Buildah is nil when the buildah builder is not enabled.
	Buildah *imagebuilder.Buildah
	// Timeout bounds the buildah part; 0 means 2 minutes.
	Timeout time.Duration
}

// Run sweeps and reports what it removed. Errors are returned together; the
// caller logs them and starts anyway: a file the agent cannot delete (or a
// stray file in the journal) would otherwise keep the node's agent down,
// and its leftovers stay either way.
func (s Sweep) Run(ctx context.Context) error {
	log := klog.FromContext(ctx)
	var errs []error
	deleted, err := s.Journal.Sweep(s.CheckpointDir)
	for _, p := range deleted {
		log.Info("Deleted an archive left by an interrupted checkpoint", "path", p)
	}
	if err != nil {
		errs = append(errs, err)
	}
	stale, err := s.Journal.ForgetStale(time.Now().Add(-StrayJournalMaxAge))
	for _, e := range stale {
		for _, img := range e.Images {
			log.Error(nil, "A pushed checkpoint image was never recorded: its Checkpoint is gone; delete it from the registry",
				"image", img.Image, "checkpoint", e.Namespace+"/"+e.Checkpoint, "uid", e.UID, "container", img.Container)
		}
	}
	if err != nil {
		errs = append(errs, err)
	}
	removed, err := sweepWorkDir(s.WorkDir)
	for _, p := range removed {
		log.Info("Deleted a leftover from the work folder", "path", p)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if s.Buildah != nil {
		timeout := s.Timeout
		if timeout <= 0 {
			timeout = 2 * time.Minute
		}
		bctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		removed, err := s.Buildah.Sweep(bctx)
		for _, r := range removed {
			log.Info("Deleted a buildah leftover", "what", r)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweeping leftovers of an earlier run: %w", errors.Join(errs...))
	}
	return nil
}

// StrayJournalMaxAge is how long a journal entry keeps pushed images for
// a Checkpoint that never comes back to this agent (see
// archive.Journal.ForgetStale); a Checkpoint retried for longer than this
// does not exist (retries are bounded and back off to minutes).
const StrayJournalMaxAge = 7 * 24 * time.Hour

// workLeftovers are the names stateshift gives entries of the work folder
// (registryauth.WriteAuthFile, archive.ReadConfig, the buildah folders).
// Only they are removed: a work folder pointed at a shared place loses
// nothing else.
var workLeftovers = []string{"stateshift-auth-*", "config-dump-*", BuildahTmpDir + "/*", BuildahHomeDir + "/*", BuildahHomeDir + "/.*"}

// Folders in the work folder that belong to buildah.
const (
	BuildahTmpDir  = "buildah-tmp"
	BuildahHomeDir = "buildah-home"
)

func sweepWorkDir(dir string) ([]string, error) {
	var removed []string
	var errs []error
	for _, pattern := range workLeftovers {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return removed, err
		}
		for _, p := range matches {
			if b := filepath.Base(p); b == "." || b == ".." {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}
