package migration

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/detector"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

const (
	imgA = "registry.example.com/ckpt/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imgB = "registry.example.com/ckpt/app@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ckpt(name string, phase v1alpha1.CheckpointPhase, done time.Duration, image string) v1alpha1.Checkpoint {
	c := v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(done - time.Second))}}
	c.Status.Phase = phase
	if phase == v1alpha1.CheckpointSucceeded || phase == v1alpha1.CheckpointFailed {
		c.Status.CompletionTime = &metav1.Time{Time: t0.Add(done)}
	}
	if image != "" {
		c.Status.Containers = []v1alpha1.ContainerCheckpoint{{Name: "app", Image: image}}
	}
	return c
}

func namesOf(cps []v1alpha1.Checkpoint) string {
	var out []string
	for _, c := range cps {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

func TestSelects(t *testing.T) {
	byName := v1alpha1.WorkloadSelector{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}
	byLabel := v1alpha1.WorkloadSelector{APIVersion: "apps/v1", Kind: "Deployment", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "state"}}}
	all := v1alpha1.WorkloadSelector{APIVersion: "apps/v1", Kind: "Deployment"}
	bad := v1alpha1.WorkloadSelector{APIVersion: "apps/v1", Kind: "Deployment", LabelSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Nope"}}}}
	cases := []struct {
		sel           v1alpha1.WorkloadSelector
		kind, name    string
		labels        map[string]string
		want, wantErr bool
	}{
		{byName, "StatefulSet", "db", nil, true, false},
		{byName, "StatefulSet", "other", nil, false, false},
		{byName, "Deployment", "db", nil, false, false},
		{byLabel, "Deployment", "web", map[string]string{"tier": "state"}, true, false},
		{byLabel, "Deployment", "web", map[string]string{"tier": "web"}, false, false},
		{all, "Deployment", "any", nil, true, false},
		{bad, "Deployment", "web", nil, false, true},
	}
	for i, tc := range cases {
		got, err := Selects(tc.sel, "apps/v1", tc.kind, tc.name, tc.labels)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("case %d: got %v, %v; want %v, error %v", i, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPrune(t *testing.T) {
	cps := []v1alpha1.Checkpoint{
		ckpt("s1", v1alpha1.CheckpointSucceeded, 1*time.Minute, imgA),
		ckpt("s2", v1alpha1.CheckpointSucceeded, 2*time.Minute, imgA),
		ckpt("f3", v1alpha1.CheckpointFailed, 3*time.Minute, ""),
		ckpt("s4", v1alpha1.CheckpointSucceeded, 4*time.Minute, imgB),
		ckpt("p5", v1alpha1.CheckpointPushing, 5*time.Minute, ""),
		ckpt("f0", v1alpha1.CheckpointFailed, 0, ""),
	}
	kept, deleted := Prune(cps, 2, nil)
	if namesOf(kept) != "p5,s4,s2" || namesOf(deleted) != "f3,s1,f0" {
		t.Fatalf("kept %s deleted %s", namesOf(kept), namesOf(deleted))
	}
	// In use by a running Migration: never deleted.
	kept, deleted = Prune(cps, 1, map[string]bool{"s1": true})
	if namesOf(deleted) != "f3,s2,f0" || !strings.Contains(namesOf(kept), "s1") {
		t.Fatalf("kept %s deleted %s", namesOf(kept), namesOf(deleted))
	}
	// A Failed one with no Succeeded after it stays (it is the only news).
	_, deleted = Prune([]v1alpha1.Checkpoint{ckpt("f", v1alpha1.CheckpointFailed, time.Minute, "")}, 1, nil)
	if len(deleted) != 0 {
		t.Fatalf("deleted %s", namesOf(deleted))
	}
	if l := LatestVerified(cps); l == nil || l.Name != "s4" {
		t.Fatalf("latest = %v", l)
	}
}

func TestDue(t *testing.T) {
	interval := 10 * time.Second
	if d := Due(nil, interval, t0); d != 0 {
		t.Fatalf("no checkpoint: due in %s", d)
	}
	cps := []v1alpha1.Checkpoint{ckpt("s", v1alpha1.CheckpointSucceeded, 0, imgA)}
	if d := Due(cps, interval, t0.Add(4*time.Second)); d != 6*time.Second {
		t.Fatalf("due in %s", d)
	}
	if d := Due(cps, interval, t0.Add(11*time.Second)); d != 0 {
		t.Fatalf("due in %s", d)
	}
	// A failure also waits an interval (no hot loop).
	failed := append(cps, ckpt("f", v1alpha1.CheckpointFailed, 8*time.Second, ""))
	if d := Due(failed, interval, t0.Add(11*time.Second)); d != 7*time.Second {
		t.Fatalf("after failure due in %s", d)
	}
	busy := append(cps, ckpt("p", v1alpha1.CheckpointPending, 30*time.Second, ""))
	if d := Due(busy, interval, t0.Add(time.Hour)); d != interval {
		t.Fatalf("in progress: due in %s", d)
	}
}

func TestDeferredFor(t *testing.T) {
	interval, deferral := 10*time.Second, 30*time.Second
	cps := []v1alpha1.Checkpoint{ckpt("s", v1alpha1.CheckpointSucceeded, 0, imgA)}
	for _, tc := range []struct {
		cps      []v1alpha1.Checkpoint
		deferral time.Duration
		at       time.Duration // after the checkpoint completed
		want     time.Duration
	}{
		{cps, deferral, 10 * time.Second, 30 * time.Second}, // just due: waits the whole deferral
		{cps, deferral, 25 * time.Second, 15 * time.Second},
		{cps, deferral, 40 * time.Second, 0}, // the bound: due 30 s ago
		{cps, deferral, time.Hour, 0},
		{cps, 0, 10 * time.Second, 0},        // off
		{nil, deferral, 10 * time.Second, 0}, // a first checkpoint is never deferred
	} {
		if got := deferredFor(tc.cps, interval, tc.deferral, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%d checkpoints, deferral %s, %s after: waits %s, want %s", len(tc.cps), tc.deferral, tc.at, got, tc.want)
		}
	}
}

func TestLostWithin(t *testing.T) {
	const window = 2 * time.Minute
	at := func(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(t0.Add(-d))) }
	taint := func(effect corev1.TaintEffect, added *metav1.Time) []corev1.Taint {
		return []corev1.Taint{{Key: "stateshift-test", Effect: effect, TimeAdded: added}}
	}
	ready := func(status metav1.ConditionStatus, since *metav1.Time) []metav1.Condition {
		return []metav1.Condition{{Type: clusterv1alpha1.ClusterConditionReady, Status: status, LastTransitionTime: *since}}
	}
	for _, tc := range []struct {
		name       string
		taints     []corev1.Taint
		conditions []metav1.Condition
		want       bool
	}{
		{"ready, no taint", nil, ready(metav1.ConditionTrue, at(time.Second)), false},
		{"joining: no Ready condition yet", nil, nil, false},
		{"NoExecute taint just added", taint(corev1.TaintEffectNoExecute, at(10*time.Second)), ready(metav1.ConditionTrue, at(time.Hour)), true},
		{"NoExecute taint at the window's edge", taint(corev1.TaintEffectNoExecute, at(window)), nil, true},
		{"NoExecute taint added before the window", taint(corev1.TaintEffectNoExecute, at(window+time.Second)), nil, false},
		{"NoExecute taint without a time", taint(corev1.TaintEffectNoExecute, nil), nil, false},
		{"a cordon (NoSchedule) is not a loss", taint(corev1.TaintEffectNoSchedule, at(time.Second)), nil, false},
		{"Ready turned False just now", nil, ready(metav1.ConditionFalse, at(5*time.Second)), true},
		{"Ready turned Unknown just now", nil, ready(metav1.ConditionUnknown, at(5*time.Second)), true},
		{"not Ready for longer than the window", nil, ready(metav1.ConditionFalse, at(time.Hour)), false},
	} {
		cl := &clusterv1alpha1.Cluster{Spec: clusterv1alpha1.ClusterSpec{Taints: tc.taints},
			Status: clusterv1alpha1.ClusterStatus{Conditions: tc.conditions}}
		if got := lostWithin(cl, t0, window); got != tc.want {
			t.Errorf("%s: lostWithin = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBuildPlan(t *testing.T) {
	a := ckpt("db-0-aaaaa", v1alpha1.CheckpointSucceeded, time.Minute, imgA)
	b := ckpt("db-1-bbbbb", v1alpha1.CheckpointSucceeded, 2*time.Minute, imgB)
	p, err := BuildPlan("StatefulSet", map[string]*v1alpha1.Checkpoint{"db-0": &a, "db-1": &b})
	if err != nil {
		t.Fatal(err)
	}
	if p.Checkpoint != "db-0-aaaaa" || p.Containers["app"] != imgA || p.Pods["db-1"]["app"] != imgB || p.Pods["db-0"]["app"] != imgA {
		t.Fatalf("plan = %+v", p)
	}
	// One pod's checkpoint: still per pod, so the member's pod-restore
	// webhook starts the other replicas cold instead of with db-0's state.
	p, err = BuildPlan("StatefulSet", map[string]*v1alpha1.Checkpoint{"db-1": &b})
	if err != nil || len(p.Pods) != 1 || p.Pods["db-1"]["app"] != imgB {
		t.Fatalf("single pod plan = %+v, %v", p, err)
	}
	// The images the checkpointed containers ran travel with the plan.
	withSource := ckpt("db-0-ddddd", v1alpha1.CheckpointSucceeded, time.Minute, imgA)
	withSource.Annotations = map[string]string{AnnotationTemplateImages: `{"app":"registry.example.com/db:1","sidecar":"x:1"}`}
	p, err = BuildPlan("StatefulSet", map[string]*v1alpha1.Checkpoint{"db-0": &withSource})
	if err != nil || !reflect.DeepEqual(p.SourceImages, map[string]string{"app": "registry.example.com/db:1"}) {
		t.Fatalf("source images = %v, %v", p.SourceImages, err)
	}
	// Deployment: the newest pod checkpoint, no per-pod images.
	p, err = BuildPlan("Deployment", map[string]*v1alpha1.Checkpoint{"web-x": &a, "web-y": &b})
	if err != nil || p.Checkpoint != "db-1-bbbbb" || p.Pods != nil {
		t.Fatalf("deployment plan = %+v, %v", p, err)
	}
	if _, err := BuildPlan("StatefulSet", nil); err == nil {
		t.Fatal("empty plan accepted")
	}
	tagged := ckpt("db-0-ccccc", v1alpha1.CheckpointSucceeded, time.Minute, "registry.example.com/ckpt/app:latest")
	if _, err := BuildPlan("StatefulSet", map[string]*v1alpha1.Checkpoint{"db-0": &tagged}); err == nil {
		t.Fatal("tagged image accepted")
	}
	if got := checkpointName(strings.Repeat("a", 70), "member1", "", ""); len(got) > 63 {
		t.Fatalf("checkpoint names too long for a label: %d", len(got))
	}
	// The same round derives the same name; the next round, or a Migration's
	// fresh checkpoint, another one.
	first := checkpointName("db-0", "member1", "", "db-0-1111111111")
	if again := checkpointName("db-0", "member1", "", "db-0-1111111111"); again != first {
		t.Fatalf("one round, two names: %s %s", first, again)
	}
	for _, other := range []string{
		checkpointName("db-0", "member1", "", first),
		checkpointName("db-0", "member1", "db-cordon-abc", "db-0-1111111111"),
		checkpointName("db-0", "member2", "", "db-0-1111111111"),
	} {
		if other == first {
			t.Fatalf("distinct rounds share the name %s", first)
		}
	}
}

func TestExcludeClusters(t *testing.T) {
	set := func(xs ...string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	cases := []struct {
		name                      string
		bound                     []string
		settled, previous, unable map[string]bool
		want                      []string
	}{
		{"first arm", []string{"m1"}, set("m1"), set(), set(), []string{"m1"}},
		{"destination not healthy yet stays targeted", []string{"m2"}, set(), set("m1"), set(), []string{"m1"}},
		{"nothing ran yet: nothing to exclude, not armed", []string{"m1"}, set(), set(), set(), nil},
		{"moving: source still bound, destination new", []string{"m1", "m2"}, set("m1"), set("m1"), set(), []string{"m1"}},
		{"destination healthy: withdrawn from it", []string{"m2"}, set("m2"), set("m1"), set(), []string{"m2"}},
		{"running cluster turned unhealthy stays excluded", []string{"m1"}, set(), set("m1"), set(), []string{"m1"}},
		{"unable clusters never targeted", []string{"m1"}, set("m1"), set(), set("m3"), []string{"m1", "m3"}},
	}
	for _, tc := range cases {
		got := ExcludeClusters(tc.bound, tc.settled, tc.previous, tc.unable)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestDestination(t *testing.T) {
	rb := &workv1alpha2.ResourceBinding{}
	rb.Spec.Clusters = []workv1alpha2.TargetCluster{{Name: "m2"}}
	rb.Status.AggregatedStatus = []workv1alpha2.AggregatedStatusItem{
		{ClusterName: "m1", Applied: true, Health: workv1alpha2.ResourceHealthy},
		{ClusterName: "m2", Applied: true, Health: workv1alpha2.ResourceHealthy,
			Status: &runtime.RawExtension{Raw: []byte(`{"readyReplicas":1,"stateshift":{"restoredFrom":"db-0-aaaaa"}}`)}},
	}
	if st := Destination(rb, "m2"); !st.Healthy || st.RestoredFrom != "db-0-aaaaa" || !st.Reported {
		t.Fatalf("m2 = %+v", st)
	}
	if st := Destination(rb, "m3"); st.Reported || st.Healthy {
		t.Fatalf("m3 = %+v", st)
	}
	if s := SettledClusters(rb); !s["m2"] || s["m1"] {
		t.Fatalf("settled = %v (m1 is not bound)", s)
	}
}

func TestPhases(t *testing.T) {
	var s v1alpha1.MigrationStatus
	steps := []v1alpha1.MigrationPhase{v1alpha1.MigrationCheckpointing, v1alpha1.MigrationArmed, v1alpha1.MigrationRestoring, v1alpha1.MigrationRestored}
	for i, p := range steps {
		if err := SetPhase(&s, p, t0.Add(time.Duration(i)*time.Second), string(p)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Durations.Checkpoint.Duration != time.Second || s.Durations.Restore.Duration != 2*time.Second || s.Durations.Total.Duration != 3*time.Second {
		t.Fatalf("durations = %+v", s.Durations)
	}
	if s.StartTime.Time != t0 || s.CompletionTime.Time != t0.Add(3*time.Second) {
		t.Fatalf("times = %v %v", s.StartTime, s.CompletionTime)
	}
	if err := SetPhase(&s, v1alpha1.MigrationRestoring, t0, ""); err == nil {
		t.Fatal("a finished migration moved")
	}
	var d v1alpha1.MigrationStatus
	if err := SetPhase(&d, v1alpha1.MigrationRestoring, t0, ""); err != nil {
		t.Fatal(err)
	}
	if err := SetPhase(&d, v1alpha1.MigrationArmed, t0, ""); err == nil {
		t.Fatal("went back from Restoring to Armed")
	}
	if err := SetPhase(&d, v1alpha1.MigrationFellBack, t0.Add(time.Second), "cold"); err != nil || d.CompletionTime == nil {
		t.Fatalf("fell back: %v %+v", err, d)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		states      map[string]SourceState
		rescheduled bool
		want        v1alpha1.MigrationTrigger
	}{
		{map[string]SourceState{"m1": {Evicted: true, Failed: true}}, true, v1alpha1.TriggerEviction},
		{map[string]SourceState{"m1": {Failed: true}}, true, v1alpha1.TriggerFailover},
		{map[string]SourceState{"m1": {Cordoned: true}}, true, v1alpha1.TriggerRebalance},
		{map[string]SourceState{"m1": {Cordoned: true}}, false, v1alpha1.TriggerCordon},
		{map[string]SourceState{"m1": {}}, false, v1alpha1.TriggerPlacementChange},
	}
	for i, tc := range cases {
		if got := Classify(tc.states, tc.rescheduled); got != tc.want {
			t.Errorf("case %d: %s, want %s", i, got, tc.want)
		}
	}
}

func TestCordonEnd(t *testing.T) {
	m1, m12, none := []string{"m1"}, []string{"m1", "m2"}, []string(nil)
	cases := []struct {
		name string
		s    CordonState
		want string
	}{
		{"waiting: a cluster can take it", CordonState{Cordoned: m1, Sources: m12, Bound: m12, Elsewhere: []string{"m3"}, ElsewhereKnown: true}, ""},
		{"clusters unknown: keep waiting", CordonState{Cordoned: m1, Sources: m12, Bound: m12}, ""},
		{"moved to a new cluster: restored, not ended", CordonState{Cordoned: m1, Sources: m12, Bound: []string{"m2", "m3"}, Arrived: []string{"m3"}, ElsewhereKnown: true}, ""},
		{"moved into a cluster running others: restored, not ended", CordonState{Cordoned: m1, Sources: m1, Bound: []string{"m2"}, Arrived: []string{"m2"}, Scheduled: true, ElsewhereKnown: true}, ""},
		{"new cluster wins over an uncordon", CordonState{Cordoned: m1, Sources: m1, Bound: []string{"m2"}, Arrived: []string{"m2"}, Lifted: true, ElsewhereKnown: true}, ""},
		{"duplicated everywhere: nowhere to go", CordonState{Cordoned: m1, Sources: m12, Bound: m12, ElsewhereKnown: true}, ReasonNoDestination},
		{"source left, the rest ran it already", CordonState{Cordoned: m1, Sources: m12, Bound: []string{"m2"}, Scheduled: true, Elsewhere: []string{"m3"}, ElsewhereKnown: true}, ReasonNoNewCluster},
		{"source evicted, not rescheduled yet: mid-move", CordonState{Cordoned: m1, Sources: m12, Bound: []string{"m2"}, Elsewhere: []string{"m3"}, ElsewhereKnown: true}, ""},
		{"source evicted, runs nowhere yet: mid-move", CordonState{Cordoned: m1, Sources: m1, Bound: none, Scheduled: true, Elsewhere: []string{"m2"}, ElsewhereKnown: true}, ""},
		{"mid-move while uncordoned: still the move", CordonState{Cordoned: m1, Sources: m1, Bound: none, Lifted: true, ElsewhereKnown: true}, ""},
		{"source left after an uncordon: it left", CordonState{Cordoned: m1, Sources: m12, Bound: []string{"m2"}, Scheduled: true, Lifted: true, ElsewhereKnown: true}, ReasonNoNewCluster},
		{"uncordoned", CordonState{Cordoned: m1, Sources: m12, Bound: m12, Lifted: true, Elsewhere: []string{"m3"}, ElsewhereKnown: true}, ReasonCordonLifted},
		{"uncordoned with nowhere to go: lifted says more", CordonState{Cordoned: m1, Sources: m12, Bound: m12, Lifted: true, ElsewhereKnown: true}, ReasonCordonLifted},
	}
	for _, tc := range cases {
		reason, msg := CordonEnd(tc.s)
		if reason != tc.want || (reason != "") != (msg != "") {
			t.Errorf("%s: got %q (%s), want %q", tc.name, reason, msg, tc.want)
		}
	}
	if _, msg := CordonEnd(CordonState{Cordoned: m1, Sources: m12, Bound: []string{"m2"}, Scheduled: true, ElsewhereKnown: true}); !strings.Contains(msg, "m1 left") || !strings.Contains(msg, "(m2)") {
		t.Errorf("message does not name the clusters: %s", msg)
	}
}

func TestCanPlace(t *testing.T) {
	cordon := corev1.Taint{Key: clusterv1alpha1.TaintClusterUnscheduler, Effect: corev1.TaintEffectNoSchedule}
	notReady := corev1.Taint{Key: clusterv1alpha1.TaintClusterNotReady, Effect: corev1.TaintEffectNoExecute}
	cluster := func(name string, lbls map[string]string, taints ...corev1.Taint) *clusterv1alpha1.Cluster {
		return &clusterv1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Spec: clusterv1alpha1.ClusterSpec{Taints: taints}}
	}
	gone := cluster("m3", nil)
	gone.DeletionTimestamp = &metav1.Time{Time: t0}
	names := &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{"m1", "m2"}}}
	exclude := &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{ExcludeClusters: []string{"m3"}}}
	byLabel := &policyv1alpha1.Placement{ClusterAffinity: &policyv1alpha1.ClusterAffinity{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}
	groups := &policyv1alpha1.Placement{ClusterAffinities: []policyv1alpha1.ClusterAffinityTerm{
		{AffinityName: "primary", ClusterAffinity: policyv1alpha1.ClusterAffinity{ClusterNames: []string{"m1"}}},
		{AffinityName: "backup", ClusterAffinity: policyv1alpha1.ClusterAffinity{ClusterNames: []string{"m3"}}},
	}}
	tolerant := &policyv1alpha1.Placement{ClusterTolerations: []corev1.Toleration{{Key: clusterv1alpha1.TaintClusterUnscheduler, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}}
	cases := []struct {
		name string
		p    *policyv1alpha1.Placement
		cl   *clusterv1alpha1.Cluster
		want bool
	}{
		{"no placement: any cluster", nil, cluster("m3", nil), true},
		{"empty placement: any cluster", &policyv1alpha1.Placement{}, cluster("m3", nil), true},
		{"cordoned", nil, cluster("m3", nil, cordon), false},
		{"not ready (NoExecute)", nil, cluster("m3", nil, notReady), false},
		{"PreferNoSchedule does not filter", nil, cluster("m3", nil, corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}), true},
		{"cordon tolerated", tolerant, cluster("m3", nil, cordon), true},
		{"being deleted", nil, gone, false},
		{"not among clusterNames", names, cluster("m3", nil), false},
		{"among clusterNames", names, cluster("m2", nil), true},
		{"excluded", exclude, cluster("m3", nil), false},
		{"label matches", byLabel, cluster("m3", map[string]string{"env": "prod"}), true},
		{"label does not match", byLabel, cluster("m3", map[string]string{"env": "dev"}), false},
		{"a later affinity group", groups, cluster("m3", nil), true},
		{"in no affinity group", groups, cluster("m4", nil), false},
	}
	for _, tc := range cases {
		if got := CanPlace(tc.p, tc.cl); got != tc.want {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestTemplateHashAndPodRunsTemplate(t *testing.T) {
	sts := func(image string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]interface{}{
			"spec": map[string]interface{}{"replicas": int64(3), "template": map[string]interface{}{
				"metadata": map[string]interface{}{"labels": map[string]interface{}{"app": "db"}},
				"spec":     map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "app", "image": image}}},
			}},
		}}
	}
	v1, v2 := sts("registry.example.com/db:1"), sts("registry.example.com/db:2")
	if TemplateHash(v1) != TemplateHash(sts("registry.example.com/db:1")) || TemplateHash(v1) == TemplateHash(v2) {
		t.Fatal("the hash must follow the pod template and only it")
	}
	scaled := sts("registry.example.com/db:1")
	scaled.Object["spec"].(map[string]interface{})["replicas"] = int64(5)
	if TemplateHash(scaled) != TemplateHash(v1) {
		t.Fatal("a scale changed the template hash: every scale would disarm")
	}
	pod := func(image string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	}
	restored := map[string]string{restore.AnnotationRestoredFrom: "db-0-x", restore.AnnotationOriginalImages: `{"app":"registry.example.com/db:1"}`}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		tmpl *unstructured.Unstructured
		want bool
	}{
		{"same image", pod("registry.example.com/db:1", nil), v1, true},
		{"old pod of a rollout", pod("registry.example.com/db:1", nil), v2, false},
		{"restored pod of this template", pod(imgA, restored), v1, true},
		{"restored pod of the old template", pod(imgA, restored), v2, false},
		{"checkpoint image without a record", pod(imgA, nil), v1, false},
	} {
		if got := PodRunsTemplate(tc.pod, tc.tmpl); got != tc.want {
			t.Errorf("%s: PodRunsTemplate = %v", tc.name, got)
		}
	}
	cps := []v1alpha1.Checkpoint{{ObjectMeta: metav1.ObjectMeta{Name: "old", Annotations: map[string]string{AnnotationTemplateHash: TemplateHash(v1)}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new", Annotations: map[string]string{AnnotationTemplateHash: TemplateHash(v2)}}}, {}}
	if got := OfTemplate(cps, TemplateHash(v2)); len(got) != 1 || got[0].Name != "new" {
		t.Fatalf("OfTemplate = %+v", got)
	}
}

func TestMoveSources(t *testing.T) {
	for move, want := range map[string][]string{
		"member1->member2":         {"member1"},
		"member1,member3->member2": {"member1", "member3"},
		"":                         nil,
		"->member2":                nil,
	} {
		if got := MoveSources(move); !reflect.DeepEqual(got, want) {
			t.Errorf("MoveSources(%q) = %v, want %v", move, got, want)
		}
	}
}

func TestJudgePodsAndColdPlannedPods(t *testing.T) {
	pod := func(name string, ann map[string]string, phase corev1.PodPhase, waiting string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Status: corev1.PodStatus{Phase: phase}}
		if waiting != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting, Message: "m"}}}}
		}
		return p
	}
	from := map[string]string{restore.AnnotationRestoredFrom: "cp"}
	cold := map[string]string{restore.AnnotationRestoredFrom: "cp", restore.AnnotationColdStart: "restore once"}
	j := JudgePods([]corev1.Pod{
		pod("db-0", from, corev1.PodRunning, ""),
		pod("db-1", cold, corev1.PodRunning, ""),
		pod("db-2", from, corev1.PodPending, "CreateContainerError"),
		pod("db-3", nil, corev1.PodRunning, ""),
		pod("db-4", nil, corev1.PodPending, "ErrImagePull"), // not a restore: not a restore failure
		pod("db-5", from, corev1.PodPending, ""),
	})
	if got := strings.Join(j.Restored, ","); got != "db-0" {
		t.Errorf("restored %s", got)
	}
	if len(j.Failed) != 1 || !strings.HasPrefix(j.Failed[0], "db-2: container app CreateContainerError") {
		t.Errorf("failed %v", j.Failed)
	}
	if j.Cold["db-1"] != "restore once" || j.Cold["db-3"] == "" {
		t.Errorf("cold %v", j.Cold)
	}
	plan := func(pods ...string) []v1alpha1.MigrationCheckpoint {
		var out []v1alpha1.MigrationCheckpoint
		for _, p := range pods {
			out = append(out, v1alpha1.MigrationCheckpoint{Name: "cp-" + p, Pod: p})
		}
		return out
	}
	for _, tc := range []struct {
		kind    string
		planned []v1alpha1.MigrationCheckpoint
		cold    string
		pending bool
	}{
		{"StatefulSet", plan("db-0"), "", false},
		{"StatefulSet", plan("db-0", "db-1"), "db-1 started cold (restore once)", false},
		{"StatefulSet", plan("db-0", "db-5"), "", true},
		{"Deployment", plan("x"), "db-1 started cold (restore once); db-3 started cold (no restore planned for it); db-4 started cold (no restore planned for it)", false},
	} {
		c, p := ColdPlannedPods(tc.kind, tc.planned, j)
		if got := strings.Join(c, "; "); got != tc.cold || p != tc.pending {
			t.Errorf("%s %v: cold %q pending %v, want %q %v", tc.kind, tc.planned, got, p, tc.cold, tc.pending)
		}
	}
}

// The last Migration that restored a workload keeps its checkpoints in use:
// its restored pods were made from those images, and the first scheduled
// checkpoint on the destination must not prune them at once.
func TestLastRestoredMigrationKeepsItsCheckpoints(t *testing.T) {
	at := func(s int64) *metav1.Time { tm := metav1.Unix(s, 0); return &tm }
	mig := func(name string, phase v1alpha1.MigrationPhase, done *metav1.Time, cps ...string) v1alpha1.Migration {
		m := v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: name}}
		m.Status.Phase, m.Status.CompletionTime = phase, done
		for _, c := range cps {
			m.Status.Checkpoints = append(m.Status.Checkpoints, v1alpha1.MigrationCheckpoint{Name: c})
		}
		return m
	}
	ms := []v1alpha1.Migration{
		mig("old", v1alpha1.MigrationRestored, at(100), "cp-old"),
		mig("new", v1alpha1.MigrationRestored, at(200), "cp-new-0", "cp-new-1"),
		mig("cold", v1alpha1.MigrationFellBack, at(300), "cp-cold"),
		mig("running", v1alpha1.MigrationRestoring, nil, "cp-running"),
	}
	last := lastRestoredOf(ms)
	if last == nil || last.Name != "new" {
		t.Fatalf("lastRestoredOf = %v, want new", last)
	}
	got := migrationCheckpoints(unfinishedOf(ms), last, nil)
	want := map[string]bool{"cp-new-0": true, "cp-new-1": true, "cp-running": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("in use %v, want %v", got, want)
	}
	if lastRestoredOf(ms[2:3]) != nil {
		t.Error("a FellBack Migration restored nothing")
	}
}

// The Checkpoints' PropagationPolicy as stored (karmada-webhook sets each
// selector's namespace) is not rewritten at every Checkpoint; one an
// earlier version made, without the NoExecute toleration or with a
// broader selector, is.
func TestStalePropagation(t *testing.T) {
	want := checkpointPropagation("shop", "member1")
	stored := want.DeepCopy()
	stored.Spec.ResourceSelectors[0].Namespace = "shop"
	stored.Spec.Placement.ClusterTolerations = append(stored.Spec.Placement.ClusterTolerations,
		corev1.Toleration{Key: "cluster.karmada.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)})
	if stalePropagation(stored, want) {
		t.Error("the policy as stored is rewritten")
	}
	noNoExecute := stored.DeepCopy()
	noNoExecute.Spec.Placement.ClusterTolerations = noNoExecute.Spec.Placement.ClusterTolerations[:1]
	broader := stored.DeepCopy()
	broader.Spec.ResourceSelectors[0].LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{LabelCluster: "member1"}}
	for name, got := range map[string]*policyv1alpha1.PropagationPolicy{"without NoExecute": noNoExecute, "broader selector": broader} {
		if !stalePropagation(got, want) {
			t.Errorf("%s: not brought up to date", name)
		}
	}
}

// A Checkpoint made under a policy Karmada has labelled carries the claim
// Karmada's detector would write, so its ClaimPolicyForObject finds it
// claimed and does not update it (the fake client holds no object: an
// update would fail).
func TestPreclaimIsKarmadasClaim(t *testing.T) {
	pp := checkpointPropagation("shop", "member1")
	pp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel] = "8a3c6a7e-1b4d-4f6e-9c0a-2d5e7f9b1c3d"
	cp := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "db-0-1", Namespace: "shop", Labels: map[string]string{LabelManagedBy: ManagedBy}}}
	preclaim(cp, pp)
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cp)
	if err != nil {
		t.Fatal(err)
	}
	d := &detector.ResourceDetector{Client: fake.NewClientBuilder().Build()}
	id, err := d.ClaimPolicyForObject(&unstructured.Unstructured{Object: obj}, pp)
	if err != nil || id != pp.Labels[policyv1alpha1.PropagationPolicyPermanentIDLabel] {
		t.Fatalf("Karmada claims it again: id %q, %v", id, err)
	}
	want := map[string]string{policyv1alpha1.PropagationPolicyNamespaceAnnotation: "shop", policyv1alpha1.PropagationPolicyNameAnnotation: pp.Name}
	if !reflect.DeepEqual(cp.Annotations, want) {
		t.Errorf("claim annotations %v, want Karmada's %v", cp.Annotations, want)
	}

	unlabelled := &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}}
	preclaim(unlabelled, checkpointPropagation("shop", "member1"))
	preclaim(unlabelled, nil)
	if len(unlabelled.Labels) != 0 || len(unlabelled.Annotations) != 0 {
		t.Errorf("claimed without a policy ID: %v %v", unlabelled.Labels, unlabelled.Annotations)
	}
}

func TestMigrationsBeyondHistory(t *testing.T) {
	mig := func(name string, phase v1alpha1.MigrationPhase, endedMin int) v1alpha1.Migration {
		m := v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)}}
		m.Status.Phase = phase
		if endedMin >= 0 {
			m.Status.CompletionTime = ptr.To(metav1.NewTime(t0.Add(time.Duration(endedMin) * time.Minute)))
		}
		return m
	}
	names := func(ms []*v1alpha1.Migration) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	ms := []v1alpha1.Migration{
		mig("restored-1", v1alpha1.MigrationRestored, 1),
		mig("fellback-2", v1alpha1.MigrationFellBack, 2),
		mig("restored-3", v1alpha1.MigrationRestored, 3),
		mig("failed-4", v1alpha1.MigrationFailed, 4),
		mig("failed-5", v1alpha1.MigrationFailed, 5),
		mig("running", v1alpha1.MigrationRestoring, -1),
	}
	for _, tc := range []struct {
		keep int
		want []string
	}{
		// The two newest finished are failures: the newest Restored one
		// (restored-3) stays besides them; the running one always stays.
		{keep: 2, want: []string{"fellback-2", "restored-1"}},
		{keep: 1, want: []string{"fellback-2", "restored-1", "failed-4"}},
		{keep: 3, want: []string{"fellback-2", "restored-1"}},
		{keep: 4, want: []string{"restored-1"}},
		{keep: 5, want: nil},
		{keep: 10, want: nil},
	} {
		got := names(MigrationsBeyondHistory(ms, tc.keep))
		sort.Strings(got)
		sort.Strings(tc.want)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("keep %d: deleted %v, want %v", tc.keep, got, tc.want)
		}
	}
	// A Migration without a completion time is ordered by its creation.
	old := mig("old", v1alpha1.MigrationFailed, -1)
	old.CreationTimestamp = metav1.NewTime(t0.Add(-time.Hour))
	if got := names(MigrationsBeyondHistory([]v1alpha1.Migration{old, mig("new", v1alpha1.MigrationFailed, -1)}, 1)); !reflect.DeepEqual(got, []string{"old"}) {
		t.Errorf("without completion times: deleted %v, want [old]", got)
	}
}

// TestTemplateDigestsFollowTheVersion: a workload's hash and images are
// remembered per template version (UID and resourceVersion) and computed
// again when either changes; objects not read from an API server (no UID)
// are never cached.
func TestTemplateDigestsFollowTheVersion(t *testing.T) {
	sts := func(uid, rv, image string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", UID: types.UID(uid), ResourceVersion: rv},
			Spec: appsv1.StatefulSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
			},
		}
	}
	hashOf := func(o *appsv1.StatefulSet) (string, string) {
		w, err := newWorkload(o, "StatefulSet", o.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		return w.templateHash, w.templateImages
	}
	h1, i1 := hashOf(sts("u1", "10", "db:1"))
	if h, i := hashOf(sts("u1", "10", "db:1")); h != h1 || i != i1 {
		t.Fatalf("same version: %s %s, want %s %s", h, i, h1, i1)
	}
	// A new version with a new image: computed again, not the remembered one.
	h2, i2 := hashOf(sts("u1", "11", "db:2"))
	if h2 == h1 || i2 == i1 || !strings.Contains(i2, "db:2") {
		t.Fatalf("new version kept the old digests: %s %s", h2, i2)
	}
	// A template recreated under the same name (new UID) at a version
	// number seen before is not confused with the old one.
	if h, _ := hashOf(sts("u2", "10", "db:3")); h == h1 {
		t.Fatal("a recreated template took its predecessor's hash")
	}
	// Without a UID nothing is cached: the same version string with other
	// content gives other digests.
	a, _ := hashOf(sts("", "1", "db:4"))
	b, _ := hashOf(sts("", "1", "db:5"))
	if a == b {
		t.Fatal("objects without UID were cached")
	}
}

func TestMigrationsOfDeletedWorkloads(t *testing.T) {
	mig := func(name, workload string, phase v1alpha1.MigrationPhase) v1alpha1.Migration {
		m := v1alpha1.Migration{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: workload}}}
		m.Status.Phase = phase
		return m
	}
	deleting := mig("going", "gone", v1alpha1.MigrationFailed)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	ms := []v1alpha1.Migration{
		mig("kept-restored", "db", v1alpha1.MigrationRestored),
		mig("gone-restored", "gone", v1alpha1.MigrationRestored),
		mig("gone-fellback", "gone", v1alpha1.MigrationFellBack),
		mig("gone-restoring", "gone", v1alpha1.MigrationRestoring),
		mig("gone-new", "gone", ""),
		deleting,
		// Same name, other kind: a Deployment db does not keep a
		// StatefulSet db's history.
		func() v1alpha1.Migration {
			m := mig("deployment-db", "db", v1alpha1.MigrationFailed)
			m.Spec.WorkloadRef.Kind = "Deployment"
			return m
		}(),
	}
	var got []string
	for _, m := range MigrationsOfDeletedWorkloads(ms, map[string]bool{workloadLabel("StatefulSet", "db"): true}) {
		got = append(got, m.Name)
	}
	if want := "gone-restored,gone-fellback,deployment-db"; strings.Join(got, ",") != want {
		t.Fatalf("deleted: %v, want %s", got, want)
	}
}
