package framework

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// cleanupTimeout bounds each restore step run after a test.
const cleanupTimeout = time.Minute

// Cordon runs `karmadactl cordon CLUSTER` and, when the test ends, uncordons
// it again (if it still is), so every test leaves the clusters as it found them.
func (e *Env) Cordon(t testing.TB, cluster string) {
	t.Helper()
	if out, err := e.KarmadaCtl(t.Context(), "cordon", cluster); err != nil {
		t.Fatalf("cordon %s: %v", cluster, err)
	} else {
		t.Logf("karmadactl cordon %s: %s", cluster, trim(out))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if e.hasTaint(ctx, cluster, "cluster.karmada.io/unschedulable:NoSchedule") {
			if _, err := e.KarmadaCtl(ctx, "uncordon", cluster); err != nil {
				t.Errorf("restore: uncordon %s: %v", cluster, err)
			}
		}
	})
}

// Uncordon runs `karmadactl uncordon CLUSTER`.
func (e *Env) Uncordon(t testing.TB, cluster string) {
	t.Helper()
	if _, err := e.KarmadaCtl(t.Context(), "uncordon", cluster); err != nil {
		t.Fatalf("uncordon %s: %v", cluster, err)
	}
}

// Taint runs `karmadactl taint clusters CLUSTER TAINT` (key=value:Effect)
// and removes the taint when the test ends.
func (e *Env) Taint(t testing.TB, cluster, taint string) {
	t.Helper()
	if _, err := e.KarmadaCtl(t.Context(), "taint", "clusters", cluster, taint); err != nil {
		t.Fatalf("taint %s %s: %v", cluster, taint, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if e.hasTaint(ctx, cluster, taint) {
			if _, err := e.KarmadaCtl(ctx, "taint", "clusters", cluster, taint+"-"); err != nil {
				t.Errorf("restore: untaint %s %s: %v", cluster, taint, err)
			}
		}
	})
}

// CordonNode marks a member's node unschedulable (`kubectl cordon`) and
// uncordons it when the test ends.
func (e *Env) CordonNode(t testing.TB, cluster, node string) {
	t.Helper()
	if _, err := e.KubeCtl(t.Context(), cluster, "cordon", node); err != nil {
		t.Fatalf("cordon node %s/%s: %v", cluster, node, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := e.KubeCtl(ctx, cluster, "uncordon", node); err != nil {
			t.Errorf("restore: uncordon node %s/%s: %v", cluster, node, err)
		}
	})
}

// UncordonNode marks a member's node schedulable again.
func (e *Env) UncordonNode(t testing.TB, cluster, node string) {
	t.Helper()
	if _, err := e.KubeCtl(t.Context(), cluster, "uncordon", node); err != nil {
		t.Fatalf("uncordon node %s/%s: %v", cluster, node, err)
	}
}

func (e *Env) hasTaint(ctx context.Context, cluster, taint string) bool {
	c, err := e.Cluster(ctx, cluster)
	if err != nil {
		return true // unknown: try to remove it anyway
	}
	return slices.Contains(TaintStrings(c), taint)
}

// DumpLogsOnFailure keeps the named components' logs (all of local-up's
// components when none are named) if the test fails: copied whole into
// FailureLogDir, named in one line. Printing them into the test output
// would push the test's own failure message out of the tail CI shows, and
// the run folder is removed when the suite stops the environment.
func (e *Env) DumpLogsOnFailure(t testing.TB, components ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if len(components) == 0 {
			components = e.Components()
		}
		dir, err := e.keepLogs(t.Name(), components)
		if err != nil {
			t.Logf("keep the logs of %v: %v", components, err)
			return
		}
		t.Logf("logs of %s kept in %s", strings.Join(components, ", "), dir)
	})
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
