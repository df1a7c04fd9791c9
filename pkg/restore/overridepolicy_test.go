package restore

import (
	"strings"
	"testing"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	"github.com/karmada-io/karmada/pkg/util/gclient"
	"github.com/karmada-io/karmada/pkg/util/overridemanager"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestOverridePolicyThroughKarmada applies the policy with Karmada's own
// override manager (the code ensureWork runs per target cluster): the
// excluded source cluster gets the template untouched, every other cluster
// gets exactly Rewrite's manifest, and other workloads are not touched.
// The client only stores the Cluster and OverridePolicy objects the
// manager lists; the overriding itself is Karmada's.
func TestOverridePolicyThroughKarmada(t *testing.T) {
	for _, tc := range rewriteCases() {
		if tc.want == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			template := tc.in(t)
			policy, err := OverridePolicy(template, tc.plan, []string{"source"})
			if err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(gclient.NewSchema()).WithObjects(
				cluster("source"), cluster("dest-a"), cluster("dest-b"), policy,
			).Build()
			om := overridemanager.New(c, record.NewFakeRecorder(100))

			onSource := template.DeepCopy()
			if _, _, err := om.ApplyOverridePolicies(onSource, "source"); err != nil {
				t.Fatal(err)
			}
			assertEqual(t, onSource, template)

			want := tc.want(t)
			for _, dest := range []string{"dest-a", "dest-b"} {
				got := template.DeepCopy()
				if _, _, err := om.ApplyOverridePolicies(got, dest); err != nil {
					t.Fatalf("%s: %v", dest, err)
				}
				assertEqual(t, got, want)
			}

			other := template.DeepCopy()
			other.SetName("other")
			before := other.DeepCopy()
			if _, _, err := om.ApplyOverridePolicies(other, "dest-a"); err != nil {
				t.Fatal(err)
			}
			assertEqual(t, other, before)
		})
	}
}

func TestOverridePolicyRefusesEmptyExclude(t *testing.T) {
	_, err := OverridePolicy(toU(t, statefulSet()), Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}}, nil)
	if err == nil || !strings.Contains(err.Error(), "rewrite the source") {
		t.Fatalf("error = %v", err)
	}
}

func TestOverridePolicyShape(t *testing.T) {
	p, err := OverridePolicy(toU(t, statefulSet()), Plan{Checkpoint: "c", Containers: map[string]string{"app": ckptApp}}, []string{"m1", "m2"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "stateshift-restore-statefulset-db" || p.Namespace != "shop" {
		t.Fatalf("name = %s/%s", p.Namespace, p.Name)
	}
	sel := p.Spec.ResourceSelectors
	if len(sel) != 1 || sel[0].Kind != "StatefulSet" || sel[0].Name != "db" || sel[0].APIVersion != "apps/v1" {
		t.Fatalf("selectors = %+v", sel)
	}
	rules := p.Spec.OverrideRules
	if len(rules) != 1 || rules[0].TargetCluster == nil || strings.Join(rules[0].TargetCluster.ExcludeClusters, ",") != "m1,m2" ||
		len(rules[0].TargetCluster.ClusterNames) != 0 || rules[0].TargetCluster.LabelSelector != nil {
		t.Fatalf("rules = %+v", rules)
	}
}

func cluster(name string) *clusterv1alpha1.Cluster {
	return &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
