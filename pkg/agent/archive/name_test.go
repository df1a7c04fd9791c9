package archive

import "testing"

func TestHoldsContainer(t *testing.T) {
	const ns, pod, ctr = "shop", "db-0", "main"
	for _, tc := range []struct {
		recorded string
		want     bool
	}{
		// What CRI-O 1.34 wrote into a real node's archive.
		{"k8s_main_db-0_shop_65754509-dd6f-40d2-8dda-b410e48eabc9_0", true},
		{"k8s_main_db-0_shop_65754509-dd6f-40d2-8dda-b410e48eabc9_3", true},
		{"main", true},
		{"k8s_sidecar_db-0_shop_65754509-dd6f-40d2-8dda-b410e48eabc9_0", false},
		{"k8s_main_db-1_shop_65754509-dd6f-40d2-8dda-b410e48eabc9_0", false},
		{"k8s_main_db-0_other_65754509-dd6f-40d2-8dda-b410e48eabc9_0", false},
		{"k8s_main_db-0_shop_0", false},
		{"x8s_main_db-0_shop_65754509-dd6f-40d2-8dda-b410e48eabc9_0", false},
		{"sidecar", false},
		{"", false},
	} {
		if got := HoldsContainer(tc.recorded, ns, pod, ctr); got != tc.want {
			t.Errorf("HoldsContainer(%q) = %t, want %t", tc.recorded, got, tc.want)
		}
	}
}
