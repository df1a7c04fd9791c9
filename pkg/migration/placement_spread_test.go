package migration

import (
	"strings"
	"testing"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSpreadRefusal: a person's move puts the whole workload on one
// cluster, so a placement that spreads it over more clusters, regions,
// providers or label values than one is refused, naming the constraint;
// zones count the destination's own; no constraint or one group is fine.
func TestSpreadRefusal(t *testing.T) {
	oneZone := &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "eu-1"}, Spec: clusterv1alpha1.ClusterSpec{Zones: []string{"a"}}}
	threeZones := &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "eu-2"}, Spec: clusterv1alpha1.ClusterSpec{Zones: []string{"a", "b", "c"}}}
	spread := func(sc ...policyv1alpha1.SpreadConstraint) *policyv1alpha1.Placement {
		return &policyv1alpha1.Placement{SpreadConstraints: sc}
	}
	for _, tc := range []struct {
		name      string
		placement *policyv1alpha1.Placement
		cluster   *clusterv1alpha1.Cluster
		want      string // substring of the refusal; "" allowed
	}{
		{"no placement", nil, oneZone, ""},
		{"no constraint", spread(), oneZone, ""},
		{"one cluster is enough", spread(policyv1alpha1.SpreadConstraint{SpreadByField: policyv1alpha1.SpreadByFieldCluster, MinGroups: 1, MaxGroups: 2}), oneZone, ""},
		{"two clusters", spread(policyv1alpha1.SpreadConstraint{SpreadByField: policyv1alpha1.SpreadByFieldCluster, MinGroups: 2}), oneZone,
			"at least 2 groups by field cluster (spreadConstraints), and on cluster eu-1 it would have 1"},
		{"two regions", spread(policyv1alpha1.SpreadConstraint{SpreadByField: policyv1alpha1.SpreadByFieldRegion, MinGroups: 2}), threeZones, "by field region"},
		{"two label values", spread(policyv1alpha1.SpreadConstraint{SpreadByLabel: "rack", MinGroups: 2}), oneZone, "by label rack"},
		{"zones of the destination suffice", spread(policyv1alpha1.SpreadConstraint{SpreadByField: policyv1alpha1.SpreadByFieldZone, MinGroups: 3}), threeZones, ""},
		{"too few zones", spread(policyv1alpha1.SpreadConstraint{SpreadByField: policyv1alpha1.SpreadByFieldZone, MinGroups: 2}), oneZone, "by field zone"},
	} {
		got := spreadRefusal(tc.placement, tc.cluster)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: refusal %q, want %q", tc.name, got, tc.want)
		}
	}
}
