package migration

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// errAPIDown is what the failing client below answers.
var errAPIDown = errors.New("the server is currently unable to handle the request")

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme,
		policyv1alpha1.AddToScheme, workv1alpha2.AddToScheme, clusterv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// failingList is a client holding objs whose List of the type of fail
// returns errAPIDown; every other call works.
func failingList(t *testing.T, fail client.ObjectList, objs ...client.Object) client.WithWatch {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if reflect.TypeOf(list) == reflect.TypeOf(fail) {
				return errAPIDown
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
}

func testWorkload(t *testing.T) *workload {
	t.Helper()
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}}
	w, err := newWorkload(sts, "StatefulSet", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDetectedMoveSurfacesCheckpointListError: a move Karmada made is
// followed from the armed plan's Checkpoints. When they cannot be listed
// the Migration must not go on to Restoring with a guessed list (it would
// judge the restore against the wrong checkpoints): the error is returned,
// so the Migration is retried and the error reaches it as an Event.
func TestDetectedMoveSurfacesCheckpointListError(t *testing.T) {
	w := testWorkload(t)
	op := &policyv1alpha1.OverridePolicy{ObjectMeta: metav1.ObjectMeta{Name: restore.PolicyNameFor(w.kind(), w.name()), Namespace: "shop",
		Annotations: map[string]string{restoreKey: "db-0-member1-1"}}}
	c := failingList(t, &v1alpha1.CheckpointList{}, op)
	r := MigrationReconciler{&Controller{Client: c, Reader: c, Recorder: record.NewFakeRecorder(10)}}
	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "db-move", Namespace: "shop", Annotations: map[string]string{AnnotationMove: "member1->member2"}},
		Spec:       v1alpha1.MigrationSpec{DestinationCluster: "member2", Trigger: v1alpha1.TriggerFailover},
	}
	_, err := r.start(context.Background(), &move{m: m, p: &v1alpha1.CheckpointPolicy{}, w: w, rb: &workv1alpha2.ResourceBinding{}})
	if !errors.Is(err, errAPIDown) {
		t.Fatalf("start returned %v, want the List error", err)
	}
	if m.Status.Phase == v1alpha1.MigrationRestoring || len(m.Status.Checkpoints) != 0 {
		t.Fatalf("went on without the armed checkpoints: phase %s, checkpoints %+v", m.Status.Phase, m.Status.Checkpoints)
	}
}

// TestEqualPolicyConversionError: a spec that cannot be converted is an
// error. Before, both conversions failing left two nil maps that compared
// equal, so arm skipped an update it needed.
func TestEqualPolicyConversionError(t *testing.T) {
	withValue := func(raw string) *policyv1alpha1.OverridePolicy {
		return &policyv1alpha1.OverridePolicy{Spec: policyv1alpha1.OverrideSpec{OverrideRules: []policyv1alpha1.RuleWithCluster{{
			Overriders: policyv1alpha1.Overriders{Plaintext: []policyv1alpha1.PlaintextOverrider{{
				Path: "/spec/template/spec/containers/0/image", Operator: policyv1alpha1.OverriderOpReplace,
				Value: apiextensionsv1.JSON{Raw: []byte(raw)},
			}}},
		}}}}
	}
	if same, err := equalPolicy(withValue(`{"image":`), withValue(`{"other":`)); err == nil || same {
		t.Fatalf("unconvertible specs: same=%v err=%v, want an error", same, err)
	}
	if same, err := equalPolicy(withValue(`"a"`), withValue(`"a"`)); err != nil || !same {
		t.Fatalf("equal specs: same=%v err=%v", same, err)
	}
	if same, err := equalPolicy(withValue(`"a"`), withValue(`"b"`)); err != nil || same {
		t.Fatalf("different specs: same=%v err=%v", same, err)
	}
}

// TestWatchEventDroppedIsLogged: a map function that cannot list the
// dependents of an event enqueues nothing, and says so with the object.
func TestWatchEventDroppedIsLogged(t *testing.T) {
	var logged []string
	ctx := klog.NewContext(context.Background(), funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{}))
	rb := &workv1alpha2.ResourceBinding{ObjectMeta: metav1.ObjectMeta{Name: "db-statefulset", Namespace: "shop"}}
	type mapFunc = func(context.Context, client.Object) []reconcile.Request
	cases := []struct {
		name string
		fail client.ObjectList
		mapf func(*Controller) mapFunc
	}{
		{"policiesInNamespace", &v1alpha1.CheckpointPolicyList{}, func(c *Controller) mapFunc { return c.policiesInNamespace }},
		{"unfinishedMigrationsInNamespace", &v1alpha1.MigrationList{}, func(c *Controller) mapFunc { return c.unfinishedMigrationsInNamespace }},
		{"unfinishedCordonMigrations", &v1alpha1.MigrationList{}, func(c *Controller) mapFunc { return c.unfinishedCordonMigrations }},
	}
	for _, tc := range cases {
		logged = nil
		c := &Controller{Client: failingList(t, tc.fail)}
		if got := tc.mapf(c)(ctx, rb); len(got) != 0 {
			t.Errorf("%s: enqueued %v", tc.name, got)
		}
		all := strings.Join(logged, "\n")
		for _, want := range []string{`"namespace"="shop"`, `"name"="db-statefulset"`, "ResourceBinding", errAPIDown.Error()} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: the dropped event is logged without %s: %q", tc.name, want, all)
			}
		}
	}
}
