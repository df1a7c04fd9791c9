package migration_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/test/testenv"
)

// residency is a placement for the EU only, never member3, tolerating
// nothing: the policy an operator writes for data residency.
func residency() *policyv1alpha1.Placement {
	return &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{
		LabelSelector:   &metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}},
		ExcludeClusters: []string{"eu-excluded"},
	}}
}

func clusters(t *testing.T, c client.Client) {
	t.Helper()
	for name, region := range map[string]string{"eu-1": "eu", "eu-2": "eu", "eu-excluded": "eu", "eu-tainted": "eu", "us-1": "us"} {
		cl := &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"region": region}}}
		if name == "eu-tainted" {
			cl.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "payments", Effect: corev1.TaintEffectNoSchedule}}
		}
		must(t, c.Create(t.Context(), cl))
	}
}

func manualMigration(ns, name, dest string) *v1alpha1.Migration {
	return &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
			DestinationCluster: dest, Trigger: v1alpha1.TriggerManual},
	}
}

// TestSecurityMigrationOutsidePlacementRefusedAtAdmission: with the shipped
// webhook configuration (artifacts/security/migration-placement-
// webhook.yaml) and interpreter-webhook's handler, a real API server
// refuses a person's Migration to a cluster the workload's placement
// excludes, selects not, or whose taint it does not tolerate, naming why.
func TestSecurityMigrationOutsidePlacementRefusedAtAdmission(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: karmadaCRDs(t),
		WebhookPaths: []string{filepath.Join(testenv.Root(), "artifacts", "security", "migration-placement-webhook.yaml")}})
	s := testenv.Scheme()
	for _, add := range []func(*runtime.Scheme) error{policyv1alpha1.AddToScheme, workv1alpha2.AddToScheme, clusterv1alpha1.AddToScheme} {
		must(t, add(s))
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	must(t, err)
	servePlacement(t, env, c, s)
	clusters(t, c)
	ns := env.Namespace(t, "shop")
	must(t, c.Create(t.Context(), &workv1alpha2.ResourceBinding{
		ObjectMeta: metav1.ObjectMeta{Name: migration.BindingName("StatefulSet", "db"), Namespace: ns},
		Spec: workv1alpha2.ResourceBindingSpec{Resource: workv1alpha2.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: ns, Name: "db"},
			Placement: residency(), Clusters: []workv1alpha2.TargetCluster{{Name: "eu-1", Replicas: 1}}},
	}))
	for dest, want := range map[string]string{
		"us-1":        "cluster us-1 is outside the placement's clusterAffinity",
		"eu-excluded": "cluster eu-excluded is outside the placement's clusterAffinity",
		"eu-tainted":  "cluster eu-tainted has taint dedicated=payments:NoSchedule, which the placement does not tolerate",
		"nowhere":     "destination cluster nowhere does not exist",
	} {
		err := c.Create(t.Context(), manualMigration(ns, "to-"+dest, dest))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "migrations.placement.stateshift.io") {
			t.Errorf("Migration to %s: %v, want a refusal saying %q", dest, err, want)
		}
	}
	if err := c.Create(t.Context(), manualMigration(ns, "to-eu-2", "eu-2")); err != nil {
		t.Fatalf("a Migration inside the placement was refused: %v", err)
	}
}

// servePlacement runs the placement webhook where the API server was told
// to call it, until the test ends.
func servePlacement(t *testing.T, env *testenv.Env, c client.Client, s *runtime.Scheme) {
	t.Helper()
	w := env.Webhook
	srv := webhook.NewServer(webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir})
	srv.Register(migration.PlacementWebhookPath, migration.NewPlacementWebhook(c, s))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := net.JoinHostPort(w.LocalServingHost, strconv.Itoa(w.LocalServingPort))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook server on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSecurityControllerRefusesMoveOutsidePlacement: without the webhook
// (a Migration created before it was installed), the controller fails the
// Migration with reason OutsidePlacement and never touches the binding's
// placement or scheduling.
func TestSecurityControllerRefusesMoveOutsidePlacement(t *testing.T) {
	h := start(t)
	clusters(t, h.c)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1", Labels: map[string]string{"region": "eu"}}})
	h.statefulSet("member1")
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) { rb.Spec.Placement = residency() })
	h.policy(nil)
	h.create(manualMigration(h.ns, "to-us", "us-1"))
	h.eventually("the Migration refused", 20*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		must(t, h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "to-us"}, m))
		return m.Status.Phase == v1alpha1.MigrationFailed && strings.Contains(m.Status.Message, "cluster us-1 is outside the placement's clusterAffinity"),
			fmt.Sprintf("%s: %s", m.Status.Phase, m.Status.Message)
	})
	h.eventSaying("OutsidePlacement", "may not move StatefulSet db to us-1")
	rb := h.binding()
	if rb.Spec.Suspension != nil || rb.Spec.Placement.ClusterAffinity.ClusterNames != nil || rb.Annotations[migration.AnnotationScheduling] != "" {
		t.Fatalf("the binding was changed for a refused move: %+v %v", rb.Spec, rb.Annotations)
	}
}
