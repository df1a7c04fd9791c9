package migration

import (
	"strings"
	"testing"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestPlaceableClusters: the pull Secret goes where the binding's
// placement lets Karmada place the workload (any affinity term), and
// where it is bound now; without an affinity, everywhere.
func TestPlaceableClusters(t *testing.T) {
	clusters := []clusterv1alpha1.Cluster{
		{ObjectMeta: metav1.ObjectMeta{Name: "eu-1", Labels: map[string]string{"region": "eu"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "eu-2", Labels: map[string]string{"region": "eu"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "us-1", Labels: map[string]string{"region": "us"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ap-1", Labels: map[string]string{"region": "ap"}}},
	}
	eu := policyv1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}}
	cases := []struct {
		name      string
		placement *policyv1alpha1.Placement
		bound     []string
		want      string
	}{
		{"no placement: every cluster", nil, nil, "ap-1,eu-1,eu-2,us-1"},
		{"no affinity: every cluster", &policyv1alpha1.Placement{}, nil, "ap-1,eu-1,eu-2,us-1"},
		{"label selector", &policyv1alpha1.Placement{ClusterAffinity: &eu}, nil, "eu-1,eu-2"},
		{"excluded cluster", &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{
			LabelSelector: eu.LabelSelector, ExcludeClusters: []string{"eu-2"}}}, nil, "eu-1"},
		{"affinity terms: any", &policyv1alpha1.Placement{ClusterAffinities: []policyv1alpha1.ClusterAffinityTerm{
			{AffinityName: "primary", ClusterAffinity: eu},
			{AffinityName: "backup", ClusterAffinity: policyv1alpha1.ClusterAffinity{ClusterNames: []string{"us-1"}}},
		}}, nil, "eu-1,eu-2,us-1"},
		{"bound outside the placement (a person's move)", &policyv1alpha1.Placement{ClusterAffinity: &eu}, []string{"ap-1"}, "ap-1,eu-1,eu-2"},
	}
	for _, tc := range cases {
		rb := &workv1alpha2.ResourceBinding{Spec: workv1alpha2.ResourceBindingSpec{Placement: tc.placement}}
		for _, c := range tc.bound {
			rb.Spec.Clusters = append(rb.Spec.Clusters, workv1alpha2.TargetCluster{Name: c})
		}
		if got := strings.Join(PlaceableClusters(rb, clusters), ","); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestPullSecretPropagationShape: one Secret, by name, to the clusters
// given, tolerating every taint, owned by every policy naming it.
func TestPullSecretPropagationShape(t *testing.T) {
	users := []*v1alpha1.CheckpointPolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-a"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", UID: "uid-b"}},
	}
	pp := PullSecretPropagation("shop", "ckpt-pull", []string{"m1", "m2"}, users)
	if pp.Name != "stateshift-pull-secret-ckpt-pull" || pp.Namespace != "shop" || pp.Annotations[v1alpha1.LabelPullSecret] != "ckpt-pull" {
		t.Fatalf("meta = %+v", pp.ObjectMeta)
	}
	sel := pp.Spec.ResourceSelectors
	if len(sel) != 1 || sel[0].Kind != "Secret" || sel[0].Name != "ckpt-pull" || sel[0].Namespace != "shop" || sel[0].LabelSelector != nil {
		t.Fatalf("selectors = %+v", sel)
	}
	if got := strings.Join(pp.Spec.Placement.ClusterAffinity.ClusterNames, ","); got != "m1,m2" {
		t.Fatalf("clusters = %s", got)
	}
	if tol := pp.Spec.Placement.ClusterTolerations; len(tol) != 1 || tol[0].Key != "" || tol[0].Operator != "Exists" {
		t.Fatalf("tolerations = %+v", tol)
	}
	// What Karmada's PropagationPolicy webhook checks.
	if errs := validation.ValidatePropagationSpec(pp.Spec, pp.Namespace); len(errs) > 0 {
		t.Fatalf("Karmada refuses the PropagationPolicy: %v", errs)
	}
	if len(pp.OwnerReferences) != 2 || pp.OwnerReferences[1].UID != "uid-b" {
		t.Fatalf("owners = %+v", pp.OwnerReferences)
	}
	long := strings.Repeat("s", 253)
	if n := pullSecretPropagationName(long); len(n) > 253 || n == pullSecretPropagationName(long[:252]+"t") {
		t.Fatalf("long names: %d %s", len(n), n)
	}
}

// TestReceiverRuleCarriesPullSecret: the rule restoring moved replicas
// into a cluster that already runs others adds the pull Secret too (its
// new pods pull the checkpoint images like any destination's).
func TestReceiverRuleCarriesPullSecret(t *testing.T) {
	sts := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]interface{}{"name": "db", "namespace": "shop", "generation": int64(3)},
		"spec": map[string]interface{}{"template": map[string]interface{}{"spec": map[string]interface{}{
			"containers": []interface{}{map[string]interface{}{"name": "app", "image": "registry.example.com/db:1"}},
		}}},
	}}
	image := "registry.example.com/ckpt/db@sha256:" + strings.Repeat("a", 64)
	cp := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "db-0-ckpt"},
		Status: v1alpha1.CheckpointStatus{Containers: []v1alpha1.ContainerCheckpoint{{Name: "app", Image: image}}}}
	m := &v1alpha1.Migration{Status: v1alpha1.MigrationStatus{DestinationCluster: "member2",
		Checkpoints: []v1alpha1.MigrationCheckpoint{{Name: cp.Name, Cluster: "member1", Pod: "db-0", Into: "db-1"}}}}
	chosen := map[PodKey]*v1alpha1.Checkpoint{{Cluster: "member1", Pod: "db-0"}: cp}
	for _, pull := range []string{"", "ckpt-pull"} {
		rules, err := receiverRules(&workload{obj: sts, kindName: "StatefulSet"}, m, chosen, pull)
		if err != nil || len(rules) != 1 {
			t.Fatalf("rules = %+v, %v", rules, err)
		}
		var got string
		for _, o := range rules[0].Overriders.Plaintext {
			if strings.Contains(o.Path, "imagePullSecrets") {
				got = string(o.Value.Raw)
			}
		}
		want := map[string]string{"": "", "ckpt-pull": `[{"name":"ckpt-pull"}]`}[pull]
		if got != want || rules[0].TargetCluster.ClusterNames[0] != "member2" {
			t.Fatalf("pull %q: imagePullSecrets overrider %q, want %q (rule %+v)", pull, got, want, rules[0].TargetCluster)
		}
	}
}
