package migration

import (
	"context"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// TestWorkloadMigrationsByIndex: a workload's Migrations come from the
// index on spec.workloadRef and are exactly its own: not another kind's
// of the same name, not a longer name's, not another namespace's.
func TestWorkloadMigrationsByIndex(t *testing.T) {
	migration := func(ns, name, kind, workload string) client.Object {
		return &v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{Kind: kind, Name: workload}}}
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).
		WithIndex(&v1alpha1.Migration{}, migrationWorkloadIndex, indexMigrationWorkload).
		WithObjects(
			migration("shop", "db-move-1", "StatefulSet", "db"),
			migration("shop", "db-move-2", "StatefulSet", "db"),
			migration("shop", "db-deployment", "Deployment", "db"),
			migration("shop", "db2-move", "StatefulSet", "db2"),
			migration("other", "db-elsewhere", "StatefulSet", "db"),
			migration("shop", "no-workload", "", ""),
		).Build()
	ctrl := &Controller{Client: c, Reader: c}
	w, err := newWorkload(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}}, "StatefulSet",
		&metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ctrl.workloadMigrations(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "db-move-1" || names[1] != "db-move-2" {
		t.Fatalf("Migrations of StatefulSet shop/db: %v, want [db-move-1 db-move-2]", names)
	}
}
