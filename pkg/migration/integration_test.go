package migration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/migration"
	"github.com/stateshift/stateshift/pkg/restore"
	"github.com/stateshift/stateshift/test/registry"
	"github.com/stateshift/stateshift/test/testenv"
)

// karmadaCRDs are the CRDs the controller uses, from the Karmada module,
// plus the test-only Cluster stand-in (Karmada serves Clusters from its
// aggregated API server).
func karmadaCRDs(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/karmada-io/karmada").Output()
	if err != nil {
		t.Fatalf("locate the Karmada module: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	bases := filepath.Join(dir, "charts", "karmada", "_crds", "bases")
	return []string{filepath.Join(bases, "policy"), filepath.Join(bases, "work"), filepath.Join(testenv.Root(), "test", "crds", "karmada-cluster")}
}

type harness struct {
	t   testing.TB
	ctx context.Context
	c   client.Client
	ns  string
	reg *registry.Registry
	// auth is how the test (the agent it plays, its checks) talks to reg.
	auth authn.Authenticator
}

// harnessOptions change how start runs the controller.
type harnessOptions struct {
	// shippedRBAC runs the controller as its ServiceAccount with only
	// artifacts/controller/rbac.yaml (the harness's own client stays admin).
	shippedRBAC bool
	// registry starts the registry with these options (e.g. WithAuth).
	registry []registry.Option
	// pods wraps the pod lister the controller uses.
	pods func(migration.PodLister) migration.PodLister
	// reconcileTimeout is the controller's Options.ReconcileTimeout.
	reconcileTimeout time.Duration
	// controllers and scheduledDeferral are the controller's
	// Options.Controllers and Options.ScheduledCheckpointDeferral.
	controllers       []string
	scheduledDeferral time.Duration
	// members, when set, delivers Checkpoints with
	// migration.DeliveryProxy to these members.
	members *migration.MemberCheckpoints
}

func start(t *testing.T) *harness { return startWith(t, harnessOptions{}) }

func startWith(t testing.TB, o harnessOptions) *harness {
	env := testenv.Start(t, testenv.Options{ExtraCRDDirs: karmadaCRDs(t)})
	s := testenv.Scheme()
	for _, add := range []func(*runtime.Scheme) error{policyv1alpha1.AddToScheme, workv1alpha2.AddToScheme, clusterv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	if o.shippedRBAC {
		cfg = asControllerServiceAccount(t, env)
	}
	// One API server plays the Karmada API and both members: the pods live
	// beside the templates; the lister is the direct-client one.
	var pods migration.PodLister = migration.ClientPodLister{"member1": c, "member2": c}
	if o.pods != nil {
		pods = o.pods(pods)
	}
	mo := migration.Options{WatchClusters: true, ReconcileTimeout: o.reconcileTimeout,
		Controllers: o.controllers, ScheduledCheckpointDeferral: o.scheduledDeferral}
	if o.members != nil {
		mo.CheckpointDelivery, mo.Members = migration.DeliveryProxy, o.members
	}
	ctx := runController(t, cfg, s, pods, mo)
	h := &harness{t: t, ctx: ctx, c: c, reg: registry.Start(t, o.registry...), auth: authn.Anonymous}
	if h.reg.Username != "" {
		h.auth = &authn.Basic{Username: h.reg.Username, Password: h.reg.Password}
	}
	h.ns = env.Namespace(t, "shop")
	return h
}

// runController starts a manager with the controller on cfg until the
// test ends, and returns its context.
func runController(t testing.TB, cfg *rest.Config, s *runtime.Scheme, pods migration.PodLister, o migration.Options) context.Context {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := migration.SetupWithManager(mgr, pods, o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return ctx
}

// asControllerServiceAccount applies artifacts/controller/rbac.yaml and
// returns a config that acts as the ServiceAccount it binds, so the
// controller has exactly the shipped permissions.
func asControllerServiceAccount(t testing.TB, env *testenv.Env) *rest.Config {
	t.Helper()
	env.Namespace(t, "stateshift-system")
	applyYAML(t, env.Client, filepath.Join(testenv.Root(), "artifacts", "controller", "rbac.yaml"))
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:stateshift-system:stateshift-interpreter-webhook",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:stateshift-system", "system:authenticated"},
	}
	return cfg
}

func applyYAML(t testing.TB, c client.Client, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(t.Context(), u); err != nil {
			t.Fatalf("%s: create %v: %v", path, u.Object["kind"], err)
		}
	}
}

func (h *harness) eventually(what string, timeout time.Duration, f func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, last)
}

// statefulSet creates the template, its binding on clusters, and a Running
// pod db-0 (the agent and Karmada are played by the test).
func (h *harness) statefulSet(clusters ...string) *appsv1.StatefulSet {
	h.t.Helper()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: h.ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(1)), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/db:1"}}},
			},
		},
	}
	h.create(sts)
	rb := &workv1alpha2.ResourceBinding{
		ObjectMeta: metav1.ObjectMeta{Name: migration.BindingName("StatefulSet", "db"), Namespace: h.ns},
		Spec: workv1alpha2.ResourceBindingSpec{
			Resource: workv1alpha2.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: h.ns, Name: "db"},
		},
	}
	for _, c := range clusters {
		rb.Spec.Clusters = append(rb.Spec.Clusters, workv1alpha2.TargetCluster{Name: c, Replicas: 1})
	}
	h.create(rb)
	h.setBindingStatus(clusters[0], "")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: h.ns, Labels: map[string]string{"app": "db"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/db:1"}}},
	}
	h.create(pod)
	pod.Status.Phase = corev1.PodRunning
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		h.t.Fatal(err)
	}
	return sts
}

func (h *harness) create(o client.Object) {
	h.t.Helper()
	if err := h.c.Create(h.ctx, o); err != nil {
		h.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// setBindingStatus plays Karmada's status reflection: healthy on cluster,
// reporting restoredFrom when given.
func (h *harness) setBindingStatus(cluster, restoredFrom string) {
	h.t.Helper()
	raw := `{"readyReplicas":1}`
	if restoredFrom != "" {
		raw = fmt.Sprintf(`{"readyReplicas":1,"stateshift":{"restoredFrom":%q}}`, restoredFrom)
	}
	if restoredFrom != "" {
		h.restorePod("db-0", restoredFrom, "")
	}
	h.updateBinding(true, func(rb *workv1alpha2.ResourceBinding) {
		rb.Status.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{{
			ClusterName: cluster, Applied: true, Health: workv1alpha2.ResourceHealthy, Status: &runtime.RawExtension{Raw: []byte(raw)},
		}}
	})
}

// restorePod plays the restore plan and the member's pod-restore webhook
// on a pod: it carries restoredFrom, and coldStart when the webhook
// started it from its original image.
func (h *harness) restorePod(name, restoredFrom, coldStart string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod := &corev1.Pod{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, pod); err != nil {
			return err
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[restore.AnnotationRestoredFrom] = restoredFrom
		if coldStart != "" {
			pod.Annotations[restore.AnnotationColdStart] = coldStart
		}
		return h.c.Update(h.ctx, pod)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// updateBinding changes the binding as Karmada or an operator would, on
// the latest version: the controller writes it too, so a conflict is retried.
func (h *harness) updateBinding(status bool, mutate func(*workv1alpha2.ResourceBinding)) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rb := h.binding()
		mutate(rb)
		if status {
			return h.c.Status().Update(h.ctx, rb)
		}
		return h.c.Update(h.ctx, rb)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) binding() *workv1alpha2.ResourceBinding {
	rb := &workv1alpha2.ResourceBinding{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: migration.BindingName("StatefulSet", "db")}, rb); err != nil {
		h.t.Fatal(err)
	}
	return rb
}

// agent plays the member's checkpoint agent for every unfinished
// Checkpoint: it pushes a real image to the registry and reports its
// digest. It returns the names it completed.
func (h *harness) agent(succeed bool) []string {
	h.t.Helper()
	var l v1alpha1.CheckpointList
	if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	var done []string
	for i := range l.Items {
		cp := &l.Items[i]
		if cp.IsFinished() {
			continue
		}
		now := metav1.Now()
		cp.Status.StartTime, cp.Status.CompletionTime = &now, &now
		if succeed {
			cp.Status.Phase = v1alpha1.CheckpointSucceeded
			cp.Status.Containers = []v1alpha1.ContainerCheckpoint{{Name: "app", Image: h.pushCheckpointImage(cp), ArchiveBytes: 1}}
		} else {
			cp.Status.Phase = v1alpha1.CheckpointFailed
			cp.Status.Message = "kubelet: checkpoint not supported"
		}
		if err := h.c.Status().Update(h.ctx, cp); err != nil {
			h.t.Fatal(err)
		}
		done = append(done, cp.Name)
	}
	return done
}

// pushCheckpointImage pushes an image of cp's pod as the agent would and
// returns it by digest.
func (h *harness) pushCheckpointImage(cp *v1alpha1.Checkpoint) string {
	h.t.Helper()
	img, err := checkpointImage(cp.Namespace, cp.Spec.PodName, "app") // security_images_test.go
	if err != nil {
		h.t.Fatal(err)
	}
	repo := h.reg.Host + "/ckpt/db"
	tag, _ := name.NewTag(repo + ":" + cp.Name)
	if err := remote.Write(tag, img, remote.WithAuth(h.auth)); err != nil {
		h.t.Fatal(err)
	}
	d, _ := img.Digest()
	return repo + "@" + d.String()
}

func (h *harness) policy(mutate func(*v1alpha1.CheckpointPolicy)) {
	p := &v1alpha1.CheckpointPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "protect", Namespace: h.ns},
		Spec: v1alpha1.CheckpointPolicySpec{
			ResourceSelectors: []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}},
			Repository:        h.reg.Host + "/ckpt/db", // where h.agent pushes
			Schedule:          v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: 5 * time.Second}},
			Retention:         v1alpha1.Retention{Keep: 1},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	h.create(p)
}

func (h *harness) overridePolicy() *policyv1alpha1.OverridePolicy {
	op := &policyv1alpha1.OverridePolicy{}
	err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-restore-statefulset-db"}, op)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return op
}

func excludes(op *policyv1alpha1.OverridePolicy) string {
	if op == nil || len(op.Spec.OverrideRules) == 0 || op.Spec.OverrideRules[0].TargetCluster == nil {
		return ""
	}
	return strings.Join(op.Spec.OverrideRules[0].TargetCluster.ExcludeClusters, ",")
}

func (h *harness) migrations() []v1alpha1.Migration {
	var l v1alpha1.MigrationList
	if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	return l.Items
}

// TestProtectArmRetainAndCordonMove runs the controller against a real API
// server with Karmada's CRDs and a real registry: scheduled checkpoints
// propagated by the controller's PropagationPolicy, the armed restore
// (source excluded), retention in the API and in the registry, then a
// cordon: scheduling held, fresh checkpoint, armed, hold lifted, and a
// Karmada move to member2 followed to Restored, with the plan withdrawn
// from the destination.
func TestProtectArmRetainAndCordonMove(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(nil)

	// 1. A scheduled Checkpoint of db-0 on member1, labelled and propagated.
	var first []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		first = h.agent(true)
		return len(first) == 1, fmt.Sprint(first)
	})
	cp := &v1alpha1.Checkpoint{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, cp); err != nil {
		t.Fatal(err)
	}
	if cp.Labels[migration.LabelCluster] != "member1" || cp.Labels[migration.LabelWorkload] != "statefulset.db" || cp.Spec.PodName != "db-0" {
		t.Fatalf("checkpoint labels/spec: %v %+v", cp.Labels, cp.Spec)
	}
	pp := &policyv1alpha1.PropagationPolicy{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "stateshift-checkpoints-member1"}, pp); err != nil {
		t.Fatalf("propagation policy: %v", err)
	}
	if got := pp.Spec.Placement.ClusterAffinity.ClusterNames; len(got) != 1 || got[0] != "member1" ||
		pp.Spec.ResourceSelectors[0].LabelSelector.MatchLabels[migration.LabelCluster] != "member1" {
		t.Fatalf("propagation policy spec: %+v", pp.Spec)
	}

	// 2. Armed from it, member1 (the source) excluded.
	h.eventually("the restore armed", 10*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && excludes(op) == "member1" && op.Annotations[restore.AnnotationRestoredFrom] == first[0], excludes(op)
	})
	op := h.overridePolicy()
	// The template's containers keep their images; the restore's images
	// (by digest) go into its annotations, for the pod-restore webhook.
	restoresDigest := false
	for _, o := range op.Spec.OverrideRules[0].Overriders.Plaintext {
		if strings.Contains(o.Path, "/containers/") {
			t.Fatalf("overrider %s %s changes a container", o.Operator, o.Path)
		}
		if strings.HasPrefix(o.Path, "/spec/template/metadata") && strings.Contains(o.Path+string(o.Value.Raw), "restore-images") && strings.Contains(string(o.Value.Raw), "@sha256:") {
			restoresDigest = true
		}
	}
	if !restoresDigest {
		t.Fatalf("overriders do not restore a digest: %+v", op.Spec.OverrideRules[0].Overriders.Plaintext)
	}

	// 3. Retention keep=1: the next scheduled checkpoint replaces the
	// first, whose registry manifest is deleted.
	firstImage := cp.Status.Containers[0].Image
	var second []string
	h.eventually("the next scheduled checkpoint", 20*time.Second, func() (bool, string) {
		second = h.agent(true)
		return len(second) == 1, ""
	})
	h.eventually("the old checkpoint pruned", 20*time.Second, func() (bool, string) {
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, &v1alpha1.Checkpoint{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	ref, _ := name.NewDigest(firstImage)
	if _, err := remote.Head(ref); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("old image manifest still served: %v", err)
	}
	h.eventually("re-armed with the newer checkpoint", 10*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && op.Annotations[restore.AnnotationRestoredFrom] == second[0], ""
	})

	// 4. Cordon member1: a Cordon Migration holds scheduling and takes a fresh checkpoint.
	cl := &clusterv1alpha1.Cluster{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Name: "member1"}, cl); err != nil {
		t.Fatal(err)
	}
	cl.Spec.Taints = []corev1.Taint{{Key: clusterv1alpha1.TaintClusterUnscheduler, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &metav1.Time{Time: time.Now()}}}
	if err := h.c.Update(h.ctx, cl); err != nil {
		t.Fatal(err)
	}
	var mig v1alpha1.Migration
	h.eventually("a Cordon migration checkpointing with scheduling held", 15*time.Second, func() (bool, string) {
		ms := h.migrations()
		if len(ms) != 1 {
			return false, fmt.Sprintf("%d migrations", len(ms))
		}
		mig = ms[0]
		rb := h.binding()
		held := rb.Spec.Suspension != nil && ptr.Deref(rb.Spec.Suspension.Scheduling, false)
		return mig.Spec.Trigger == v1alpha1.TriggerCordon && mig.Status.Phase == v1alpha1.MigrationCheckpointing && held,
			fmt.Sprintf("%s %s held=%v", mig.Spec.Trigger, mig.Status.Phase, held)
	})
	var fresh []string
	h.eventually("the fresh checkpoint", 10*time.Second, func() (bool, string) {
		var l v1alpha1.CheckpointList
		_ = h.c.List(h.ctx, &l, client.InNamespace(h.ns), client.MatchingLabels{migration.LabelMigration: mig.Name})
		if len(l.Items) == 0 {
			return false, "none"
		}
		// Completes the Migration's checkpoint (and a scheduled one due
		// at the same time, if any: both are fresh).
		fresh = h.agent(true)
		return len(fresh) > 0, ""
	})
	h.eventually("Armed with the fresh checkpoint, hold lifted", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
		op := h.overridePolicy()
		rb := h.binding()
		held := rb.Spec.Suspension != nil && ptr.Deref(rb.Spec.Suspension.Scheduling, false)
		armedFresh := op != nil && contains(fresh, op.Annotations[restore.AnnotationRestoredFrom])
		var l v1alpha1.CheckpointList
		_ = h.c.List(h.ctx, &l, client.InNamespace(h.ns))
		var all []string
		for _, c := range l.Items {
			all = append(all, c.Name+"/"+string(c.Status.Phase)+"/"+c.Labels[migration.LabelMigration])
		}
		return m.Status.Phase == v1alpha1.MigrationArmed && armedFresh && !held, fmt.Sprintf("%s armedFresh=%v held=%v armed=%v fresh=%v all=%v", m.Status.Phase, armedFresh, held, op.Annotations, fresh, all)
	})

	// 5. Karmada moves it (a WorkloadRebalancer after the cordon): the
	// destination is targeted while it comes up, then reports the restore.
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	h.eventually("Restoring to member2", 10*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
		return m.Status.Phase == v1alpha1.MigrationRestoring && m.Status.DestinationCluster == "member2", string(m.Status.Phase)
	})
	if got := excludes(h.overridePolicy()); strings.Contains(got, "member2") {
		t.Fatalf("destination excluded before it is healthy: %s", got)
	}
	h.setBindingStatus("member2", h.overridePolicy().Annotations[restore.AnnotationRestoredFrom])
	h.eventually("Restored, plan withdrawn from member2", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
		got := excludes(h.overridePolicy())
		return m.Status.Phase == v1alpha1.MigrationRestored && strings.Contains(got, "member2"), fmt.Sprintf("%s exclude=%s", m.Status.Phase, got)
	})
	m := &v1alpha1.Migration{}
	_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
	if m.Status.StartTime == nil || m.Status.ArmedTime == nil || m.Status.RestoredTime == nil || m.Status.Durations.Total == nil ||
		len(m.Status.SourceClusters) != 1 || m.Status.SourceClusters[0] != "member1" || len(m.Status.Checkpoints) == 0 {
		t.Fatalf("migration status incomplete: %+v", m.Status)
	}
}

// TestColdStartAndHold: a fresh checkpoint that fails with no earlier one
// ends a person's Migration FellBack (ColdStart) with the reason, or holds
// the binding (Hold); a destination labelled stateshift.io/restore=false
// falls back at once.
func TestColdStartAndHold(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2", Labels: map[string]string{migration.LabelRestore: "false"}}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) {
		p.Spec.Schedule.Interval.Duration = time.Hour
		p.Spec.OnRestoreImpossible = v1alpha1.RestoreImpossibleHold
	})
	// The first scheduled checkpoint fails: nothing is armed.
	h.eventually("the scheduled checkpoint", 15*time.Second, func() (bool, string) { return len(h.agent(false)) == 1, "" })

	// To a cluster that cannot restore: FellBack? No: Hold holds it.
	mig := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "to-member2", Namespace: h.ns},
		Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
			DestinationCluster: "member2", Trigger: v1alpha1.TriggerManual},
	}
	h.create(mig)
	h.eventually("the move held", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(mig), m)
		rb := h.binding()
		held := rb.Spec.Suspension != nil && ptr.Deref(rb.Spec.Suspension.Scheduling, false)
		return held && strings.HasPrefix(m.Status.Message, "held:") && strings.Contains(m.Status.Message, "restore=false"), m.Status.Message
	})
	if op := h.overridePolicy(); op != nil {
		t.Fatalf("armed without a verified checkpoint: %+v", op.Spec)
	}
	if err := h.c.Delete(h.ctx, mig); err != nil {
		t.Fatal(err)
	}

	// ColdStart: the person's move goes ahead, FellBack with the reason.
	// The controller writes the policy's status meanwhile: retry on conflict.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			return err
		}
		p.Spec.OnRestoreImpossible = v1alpha1.RestoreImpossibleColdStart
		return h.c.Update(h.ctx, p)
	}); err != nil {
		t.Fatal(err)
	}
	// Release the earlier hold like an operator would (it belonged to the deleted Migration).
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Suspension = nil
		delete(rb.Annotations, migration.AnnotationScheduling)
	})
	cold := mig.DeepCopy()
	cold.ObjectMeta = metav1.ObjectMeta{Name: "cold", Namespace: h.ns}
	h.create(cold)
	h.eventually("FellBack with reason", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(cold), m)
		c := findCondition(m.Status.Conditions, v1alpha1.ConditionFellBack)
		return m.Status.Phase == v1alpha1.MigrationFellBack && c != nil && c.Reason == "DestinationCannotRestore", fmt.Sprintf("%s %+v", m.Status.Phase, c)
	})
	rb := h.binding()
	if rb.Spec.Placement == nil || rb.Spec.Placement.ClusterAffinity == nil || strings.Join(rb.Spec.Placement.ClusterAffinity.ClusterNames, ",") != "member2" {
		t.Fatalf("cold-start move not placed on member2: %+v", rb.Spec.Placement)
	}
	var events corev1.EventList
	if err := h.c.List(h.ctx, &events, client.InNamespace(h.ns)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events.Items {
		if e.Reason == "ColdStart" && e.InvolvedObject.Kind == "StatefulSet" && strings.Contains(e.Message, "restore=false") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no ColdStart Event on the StatefulSet among %d events", len(events.Items))
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cordon taints (or untaints) a member like `karmadactl cordon` (uncordon).
func (h *harness) cordon(cluster string, on bool) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cl := &clusterv1alpha1.Cluster{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Name: cluster}, cl); err != nil {
			return err
		}
		cl.Spec.Taints = nil
		if on {
			cl.Spec.Taints = []corev1.Taint{{Key: clusterv1alpha1.TaintClusterUnscheduler, Effect: corev1.TaintEffectNoSchedule}}
		}
		return h.c.Update(h.ctx, cl)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// held says whether the binding's scheduling is suspended (or marked held).
func (h *harness) held() bool {
	rb := h.binding()
	return (rb.Spec.Suspension != nil && ptr.Deref(rb.Spec.Suspension.Scheduling, false)) || rb.Annotations[migration.AnnotationScheduling] != ""
}

// activeCordon waits for the unfinished Cordon Migration of db (not one of done).
func (h *harness) activeCordon(done ...string) v1alpha1.Migration {
	h.t.Helper()
	var mig v1alpha1.Migration
	h.eventually("a new Cordon migration", 15*time.Second, func() (bool, string) {
		for _, m := range h.migrations() {
			if m.Spec.Trigger == v1alpha1.TriggerCordon && !contains(done, m.Name) {
				mig = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d migrations", len(h.migrations()))
	})
	return mig
}

// ended waits for mig to end Failed with condition Restored=False and
// reason, the hold lifted, and for the Event of that reason on it.
func (h *harness) ended(mig v1alpha1.Migration, reason, eventType string, agent bool) v1alpha1.Migration {
	h.t.Helper()
	m := &v1alpha1.Migration{}
	h.eventually("the migration ended "+reason+" with the hold lifted", 20*time.Second, func() (bool, string) {
		if agent {
			h.agent(true)
		}
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m); err != nil {
			return false, err.Error()
		}
		c := findCondition(m.Status.Conditions, v1alpha1.ConditionRestored)
		ok := m.Status.Phase == v1alpha1.MigrationFailed && c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason && !h.held()
		return ok, fmt.Sprintf("%s %q %+v held=%v", m.Status.Phase, m.Status.Message, c, h.held())
	})
	if m.Status.CompletionTime == nil || m.Status.Message == "" {
		h.t.Fatalf("ended without completion time or message: %+v", m.Status)
	}
	h.eventually("a "+reason+" Event on the migration", 10*time.Second, func() (bool, string) {
		var events corev1.EventList
		if err := h.c.List(h.ctx, &events, client.InNamespace(h.ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range events.Items {
			if e.Reason == reason && e.Type == eventType && e.InvolvedObject.Kind == "Migration" && e.InvolvedObject.Name == mig.Name {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(events.Items))
	})
	return *m
}

// TestCordonDuplicatedNowhereToGo: a Duplicated workload already on both
// members (the make demo case). Cordoning member1 leaves it nowhere to go:
// the Cordon Migration ends Failed (NoDestination) instead of staying
// Armed forever, and the binding's scheduling is not left suspended.
func TestCordonDuplicatedNowhereToGo(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1", "member2")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.eventually("the scheduled checkpoints", 20*time.Second, func() (bool, string) {
		return len(h.agent(true)) > 0, ""
	})

	h.cordon("member1", true)
	mig := h.activeCordon()
	m := h.ended(mig, migration.ReasonNoDestination, corev1.EventTypeWarning, true)
	if !strings.Contains(m.Status.Message, "member1") {
		t.Fatalf("message does not name the cordoned cluster: %s", m.Status.Message)
	}
	// It stays ended, and the cordon does not start another one.
	time.Sleep(3 * time.Second)
	if ms := h.migrations(); len(ms) != 1 || ms[0].Status.Phase != v1alpha1.MigrationFailed {
		t.Fatalf("migrations after the end: %+v", ms)
	}
	if h.held() {
		t.Fatal("scheduling held after the migration ended")
	}
}

// TestCordonLiftedOrLeftWithoutNewCluster: a workload on member1 and
// member2, member3 free, so a Cordon Migration of member1 has somewhere to
// go and waits Armed. An uncordon ends it (CordonLifted), while Armed and
// while Checkpointing (the hold is lifted); a reschedule that drops member1
// and keeps only member2, which ran it already, ends it too (NoNewCluster).
func TestCordonLiftedOrLeftWithoutNewCluster(t *testing.T) {
	h := start(t)
	for _, c := range []string{"member1", "member2", "member3"} {
		h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: c}})
	}
	h.statefulSet("member1", "member2")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval.Duration = time.Hour })
	h.eventually("the scheduled checkpoints", 20*time.Second, func() (bool, string) {
		return len(h.agent(true)) > 0, ""
	})
	armed := func(mig v1alpha1.Migration) {
		t.Helper()
		h.eventually("Armed, hold lifted", 20*time.Second, func() (bool, string) {
			h.agent(true)
			m := &v1alpha1.Migration{}
			_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
			return m.Status.Phase == v1alpha1.MigrationArmed && !h.held(), fmt.Sprintf("%s %s held=%v", m.Status.Phase, m.Status.Message, h.held())
		})
	}

	// 1. Uncordoned while Armed.
	h.cordon("member1", true)
	first := h.activeCordon()
	armed(first)
	h.cordon("member1", false)
	h.ended(first, migration.ReasonCordonLifted, corev1.EventTypeNormal, false)

	// 2. Uncordoned while Checkpointing (no agent: the fresh checkpoint
	// never completes): the hold is lifted with it.
	h.cordon("member1", true)
	second := h.activeCordon(first.Name)
	h.eventually("Checkpointing with scheduling held", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&second), m)
		return m.Status.Phase == v1alpha1.MigrationCheckpointing && h.held(), string(m.Status.Phase)
	})
	h.cordon("member1", false)
	h.ended(second, migration.ReasonCordonLifted, corev1.EventTypeNormal, false)

	// 3. Karmada drops member1 and keeps member2 only: no new cluster.
	// First as an eviction does it (member1 out of spec.clusters, not
	// rescheduled yet): that is mid-move, the Migration waits for the
	// destination; then the scheduler answers with member2 only.
	h.cordon("member1", true)
	third := h.activeCordon(first.Name, second.Name)
	armed(third)
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	time.Sleep(3 * time.Second)
	if m := (&v1alpha1.Migration{}); h.c.Get(h.ctx, client.ObjectKeyFromObject(&third), m) != nil || m.Status.Phase != v1alpha1.MigrationArmed {
		t.Fatalf("ended before Karmada rescheduled the evicted workload: %s %s", m.Status.Phase, m.Status.Message)
	}
	h.updateBinding(true, func(rb *workv1alpha2.ResourceBinding) {
		rb.Status.SchedulerObservedGeneration = rb.Generation
	})
	m := h.ended(third, migration.ReasonNoNewCluster, corev1.EventTypeWarning, false)
	if m.Status.DestinationCluster != "" || m.Status.RestoredTime != nil {
		t.Fatalf("a move without a new cluster claims a destination or a restore: %+v", m.Status)
	}
	for _, mm := range h.migrations() {
		if !mm.IsFinished() {
			t.Fatalf("unfinished migration left: %s %s", mm.Name, mm.Status.Phase)
		}
	}
}

// TestTemplateChangeDisarms: a checkpoint holds one version of the pod
// template. After the user changes the template the old checkpoint is no
// longer armed (a move would restore the old version into the new
// template), the old pod of the rollout is not checkpointed as the new
// template's, and the first checkpoint of a pod of the new template arms
// the restore again.
func TestTemplateChangeDisarms(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	sts := h.statefulSet("member1")
	h.policy(nil)
	var first []string
	h.eventually("a scheduled checkpoint", 20*time.Second, func() (bool, string) {
		first = h.agent(true)
		return len(first) == 1, fmt.Sprint(first)
	})
	h.eventually("the restore armed", 10*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && op.Annotations[restore.AnnotationRestoredFrom] == first[0], excludes(op)
	})

	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
		t.Fatal(err)
	}
	sts.Spec.Template.Spec.Containers[0].Image = "registry.example.com/db:2"
	if err := h.c.Update(h.ctx, sts); err != nil {
		t.Fatal(err)
	}
	h.eventually("disarmed after the template change", 15*time.Second, func() (bool, string) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			t.Fatal(err)
		}
		op := h.overridePolicy()
		msg := ""
		if len(p.Status.Workloads) == 1 {
			msg = p.Status.Workloads[0].Message
		}
		return op == nil && strings.Contains(msg, "pod template changed"), fmt.Sprintf("op=%v message=%q", op != nil, msg)
	})
	// db-0 still runs db:1 (the rollout has not reached it): no checkpoint
	// of it counts for the new template, so none is taken.
	time.Sleep(7 * time.Second) // longer than the 5 s schedule
	if got := h.agent(true); len(got) != 0 {
		t.Fatalf("checkpointed a pod of the old template: %v", got)
	}
	if op := h.overridePolicy(); op != nil {
		t.Fatalf("armed again from a pod of the old template: %s", op.Annotations[restore.AnnotationRestoredFrom])
	}

	// The rollout replaces db-0 with a pod of the new template.
	pod := &corev1.Pod{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "db-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Spec.Containers[0].Image = "registry.example.com/db:2"
	if err := h.c.Update(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	var second []string
	h.eventually("a checkpoint of the new template", 20*time.Second, func() (bool, string) {
		second = h.agent(true)
		return len(second) == 1, fmt.Sprint(second)
	})
	h.eventually("armed again from it", 10*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && op.Annotations[restore.AnnotationRestoredFrom] == second[0], excludes(op)
	})
	// The plan names the template generation it was armed for, so that a
	// member rendered from another generation starts cold.
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
		t.Fatal(err)
	}
	var armedFor string
	for _, pt := range h.overridePolicy().Spec.OverrideRules[0].Overriders.Plaintext {
		if strings.HasSuffix(pt.Path, "/stateshift.io~1template-generation") {
			armedFor = string(pt.Value.Raw)
		}
		if pt.Path == "/spec/template/metadata/annotations" {
			armedFor = string(pt.Value.Raw)
		}
	}
	if want := strconv.FormatInt(sts.Generation, 10); !strings.Contains(armedFor, `"`+want+`"`) {
		t.Fatalf("plan armed for %s, the template is at generation %s", armedFor, want)
	}
}

// TestMoveThroughEmptyBinding: Karmada's eviction takes the source out of
// the binding before its scheduler adds the destination. A round that sees
// the empty binding in between must not forget where the workload ran: the
// move is still recorded, with its source and destination, and restored.
func TestMoveThroughEmptyBinding(t *testing.T) {
	h := start(t)
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(nil)
	h.eventually("armed", 20*time.Second, func() (bool, string) {
		h.agent(true)
		op := h.overridePolicy()
		return op != nil && excludes(op) == "member1", excludes(op)
	})
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) { rb.Spec.Clusters = nil })
	h.eventually("a round saw the empty binding", 15*time.Second, func() (bool, string) {
		p := &v1alpha1.CheckpointPolicy{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
			t.Fatal(err)
		}
		rb := h.binding()
		return len(p.Status.Workloads) == 1 && p.Status.ObservedGeneration == p.Generation && len(rb.Spec.Clusters) == 0 &&
				strings.Join(p.Status.Workloads[0].Clusters, ",") == "member1",
			fmt.Sprintf("status clusters %v", p.Status.Workloads)
	})
	time.Sleep(6 * time.Second) // at least one more round with the binding empty
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	var mig v1alpha1.Migration
	h.eventually("the move recorded, Restoring to member2", 15*time.Second, func() (bool, string) {
		ms := h.migrations()
		if len(ms) != 1 {
			return false, fmt.Sprintf("%d migrations", len(ms))
		}
		mig = ms[0]
		return mig.Status.Phase == v1alpha1.MigrationRestoring && mig.Status.DestinationCluster == "member2" &&
				strings.Join(mig.Status.SourceClusters, ",") == "member1",
			fmt.Sprintf("%s %s %v -> %s", mig.Spec.Trigger, mig.Status.Phase, mig.Status.SourceClusters, mig.Status.DestinationCluster)
	})
	h.setBindingStatus("member2", h.overridePolicy().Annotations[restore.AnnotationRestoredFrom])
	h.eventually("Restored", 15*time.Second, func() (bool, string) {
		m := &v1alpha1.Migration{}
		_ = h.c.Get(h.ctx, client.ObjectKeyFromObject(&mig), m)
		return m.Status.Phase == v1alpha1.MigrationRestored, string(m.Status.Phase) + " " + m.Status.Message
	})
}

// TestArmedReportedBetweenRounds: the checkpoints controller reports a
// workload armed as soon as the restoreplan controller writes its plan,
// not at the next scheduled round. With a long interval (a person's
// planned move, the real-migration benchmark) the status said "no
// cluster runs the workload healthy yet" for a whole interval, because the
// plan's owner reference was not a controller reference and Owns() never
// requeued the policy.
func TestArmedReportedBetweenRounds(t *testing.T) {
	h := start(t)
	h.protectedOnMember1(30 * time.Minute)
	h.eventually("the restore armed", 10*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil, ""
	})
	h.eventually("the policy's status reports it armed", 10*time.Second, func() (bool, string) {
		p := h.checkpointPolicy()
		for _, w := range p.Status.Workloads {
			if w.Name == "db" {
				return w.Armed, w.Message
			}
		}
		return false, fmt.Sprintf("%+v", p.Status)
	})
}

// protectedOnMember1 runs db on member1 under a policy with interval and
// plays the agent for the first scheduled Checkpoint, which it returns.
func (h *harness) protectedOnMember1(interval time.Duration) *v1alpha1.Checkpoint {
	h.t.Helper()
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member1"}})
	h.create(&clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "member2"}})
	h.statefulSet("member1")
	h.policy(func(p *v1alpha1.CheckpointPolicy) { p.Spec.Schedule.Interval = metav1.Duration{Duration: interval} })
	var first []string
	h.eventually("the first scheduled checkpoint", 20*time.Second, func() (bool, string) {
		first = h.agent(true)
		return len(first) == 1, fmt.Sprint(first)
	})
	cp := &v1alpha1.Checkpoint{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: first[0]}, cp); err != nil {
		h.t.Fatal(err)
	}
	return cp
}

func (h *harness) checkpointPolicy() *v1alpha1.CheckpointPolicy {
	h.t.Helper()
	p := &v1alpha1.CheckpointPolicy{}
	if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: "protect"}, p); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// TestRestoredPodNotCheckpointedAtOnce: a pod that runs a checkpoint's
// images resumed that checkpoint's state, so its first scheduled
// checkpoint comes an interval after it. Before, the controller checkpointed
// every moved pod at once (it had no checkpoint on its new cluster): the
// process that had just resumed was frozen again for its dump, and the
// state it was restored from was uploaded a second time. A pod that
// started from its own image is checkpointed at once, as before.
func TestRestoredPodNotCheckpointedAtOnce(t *testing.T) {
	h := start(t)
	cp := h.protectedOnMember1(30 * time.Minute)
	// A move restores only what was armed before it; on a loaded machine
	// the plan comes a moment after the verified checkpoint.
	h.eventually("the restore armed", 15*time.Second, func() (bool, string) {
		op := h.overridePolicy()
		return op != nil && op.Annotations[restore.AnnotationRestoredFrom] == cp.Name, fmt.Sprint(op != nil)
	})

	// Karmada moves db to member2, where db-0 restores the checkpoint.
	h.setPodImage("db-0", cp.Status.Containers[0].Image, "registry.example.com/db:1")
	h.updateBinding(false, func(rb *workv1alpha2.ResourceBinding) {
		rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "member2", Replicas: 1}}
	})
	h.setBindingStatus("member2", cp.Name)
	h.eventually("the detected move restored", 15*time.Second, func() (bool, string) {
		ms := h.migrations()
		return len(ms) == 1 && ms[0].Status.Phase == v1alpha1.MigrationRestored, fmt.Sprintf("%+v", ms)
	})
	if got := h.checkpointsOn("member2", 5*time.Second); len(got) > 0 {
		t.Fatalf("the restored pod was checkpointed at once on member2: %v", got)
	}

	// The same pod from its own image (a cold start): checkpointed at once.
	h.setPodImage("db-0", "registry.example.com/db:1", "")
	h.setBindingStatus("member2", "")
	h.eventually("a cold pod's checkpoint on member2", 10*time.Second, func() (bool, string) {
		got := h.checkpointsOn("member2", 0)
		return len(got) == 1, fmt.Sprint(got)
	})
}

// setPodImage sets the image of a pod's one container, as the restore plan
// or the pod-restore webhook would have created it; with original, the pod
// records it as the restore's original image (as Rewrite's pod template
// does), without, it records none.
func (h *harness) setPodImage(name, image, original string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod := &corev1.Pod{}
		if err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.ns, Name: name}, pod); err != nil {
			return err
		}
		pod.Spec.Containers[0].Image = image
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		delete(pod.Annotations, restore.AnnotationOriginalImages)
		if original != "" {
			pod.Annotations[restore.AnnotationOriginalImages] = fmt.Sprintf(`{"app":%q}`, original)
		}
		return h.c.Update(h.ctx, pod)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// checkpointsOn lists the Checkpoints for cluster, watching for wait: the
// names seen (none when nothing appeared in that time).
func (h *harness) checkpointsOn(cluster string, wait time.Duration) []string {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var l v1alpha1.CheckpointList
		if err := h.c.List(h.ctx, &l, client.InNamespace(h.ns), client.MatchingLabels{migration.LabelCluster: cluster}); err != nil {
			h.t.Fatal(err)
		}
		var names []string
		for _, cp := range l.Items {
			names = append(names, cp.Name)
		}
		if len(names) > 0 || !time.Now().Before(deadline) {
			return names
		}
		time.Sleep(200 * time.Millisecond)
	}
}
