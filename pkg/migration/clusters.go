package migration

import (
	"sort"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
)

// added lists the clusters of after that are not in before, sorted.
func added(before, after []string) []string {
	var out []string
	for _, c := range after {
		if !contains(before, c) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func appendUnique(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

// placedOn says whether the binding's placement already names dest only.
func placedOn(rb *workv1alpha2.ResourceBinding, dest string) bool {
	p := rb.Spec.Placement
	return p != nil && p.ClusterAffinity != nil && len(p.ClusterAffinity.ClusterNames) == 1 && p.ClusterAffinity.ClusterNames[0] == dest
}
