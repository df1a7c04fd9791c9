package v1alpha1_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/testenv"
)

// TestPolicyAndMigrationValidation checks the CRDs' validation against a
// real API server: defaults, schedule bounds, retention, selectors and the
// Migration's rules.
func TestPolicyAndMigrationValidation(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "validation")
	ctx := t.Context()

	policy := func(name string, mutate func(*v1alpha1.CheckpointPolicy)) *v1alpha1.CheckpointPolicy {
		p := &v1alpha1.CheckpointPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.CheckpointPolicySpec{
				ResourceSelectors: []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}},
				Repository:        "registry.example.com/ckpt/db",
				Schedule:          v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: 10 * time.Second}},
			},
		}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	ok := policy("ok", nil)
	if err := env.Client.Create(ctx, ok); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	if ok.Spec.Retention.Keep != 3 || ok.Spec.OnRestoreImpossible != v1alpha1.RestoreImpossibleColdStart || ok.Spec.Builder != v1alpha1.BuilderBuildah {
		t.Fatalf("defaults not applied: %+v", ok.Spec)
	}
	bad := map[string]struct {
		mutate func(*v1alpha1.CheckpointPolicy)
		want   string
	}{
		"short-interval": {func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Second }, "at least 5s"},
		"keep-zero":      {func(p *v1alpha1.CheckpointPolicy) { p.Spec.Retention.Keep = -1 }, "keep"},
		"no-selectors":   {func(p *v1alpha1.CheckpointPolicy) { p.Spec.ResourceSelectors = nil }, "resourceSelectors"},
		"bad-kind":       {func(p *v1alpha1.CheckpointPolicy) { p.Spec.ResourceSelectors[0].Kind = "Pod" }, "kind"},
		"name-and-labels": {func(p *v1alpha1.CheckpointPolicy) {
			p.Spec.ResourceSelectors[0].LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		}, "exclusive"},
		"bad-mode": {func(p *v1alpha1.CheckpointPolicy) { p.Spec.OnRestoreImpossible = "Pray" }, "onRestoreImpossible"},
	}
	for name, tc := range bad {
		err := env.Client.Create(ctx, policy(name, tc.mutate))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to mention %q", name, err, tc.want)
		}
	}

	manual := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "no-dest", Namespace: ns},
		Spec:       v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
	}
	if err := env.Client.Create(ctx, manual); err == nil || !strings.Contains(err.Error(), "destinationCluster") {
		t.Fatalf("manual migration without destination: error = %v", err)
	}
	manual.Spec.DestinationCluster = "member2"
	if err := env.Client.Create(ctx, manual); err != nil {
		t.Fatalf("valid migration refused: %v", err)
	}
	if manual.Spec.Trigger != v1alpha1.TriggerManual {
		t.Fatalf("trigger default = %q", manual.Spec.Trigger)
	}
	manual.Spec.DestinationCluster = "member1"
	if err := env.Client.Update(ctx, manual); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("changing a Migration's spec: error = %v", err)
	}
}
