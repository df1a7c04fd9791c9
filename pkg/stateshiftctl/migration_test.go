package stateshiftctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/testenv"
)

// kubeconfigFor writes a kubeconfig for cfg, as an operator's would be.
func kubeconfigFor(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["karmada"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["karmada-apiserver"] = &clientcmdapi.Context{Cluster: "karmada", AuthInfo: "admin"}
	kc.CurrentContext = "karmada-apiserver"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	return path
}

func TestDescribeMigrationTimeline(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "shop")
	kubeconfig := kubeconfigFor(t, env.Config)
	ctx := t.Context()

	m := &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-move"},
		Spec: v1alpha1.MigrationSpec{
			WorkloadRef:        v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"},
			DestinationCluster: "member2", Trigger: v1alpha1.TriggerManual,
		},
	}
	must(t, env.Client.Create(ctx, m))
	start := m.CreationTimestamp.Time
	at := func(s float64) *metav1.Time {
		tm := metav1.NewTime(start.Add(time.Duration(s * float64(time.Second))))
		return &tm
	}
	m.Status = v1alpha1.MigrationStatus{
		Phase: v1alpha1.MigrationRestored, SourceClusters: []string{"member1"}, DestinationCluster: "member2",
		StartTime: at(0), ArmedTime: at(3), RestoredTime: at(9), CompletionTime: at(9),
		Message:     "restored on member2",
		Checkpoints: []v1alpha1.MigrationCheckpoint{{Name: "db-0-abcde", Pod: "db-0", Images: map[string]string{"db": "reg/shop/db@sha256:1"}}},
		Durations:   v1alpha1.MigrationDurations{Checkpoint: &metav1.Duration{Duration: 3 * time.Second}, Total: &metav1.Duration{Duration: 9 * time.Second}},
		Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionCheckpointReady, Status: metav1.ConditionTrue, Reason: "Verified", Message: "image verified", LastTransitionTime: *at(2)},
			{Type: v1alpha1.ConditionRestored, Status: metav1.ConditionTrue, Reason: "PodsRestored", Message: "1 of 1 pods run their checkpoint", LastTransitionTime: *at(9)},
		},
	}
	must(t, env.Client.Status().Update(ctx, m))
	must(t, env.Client.Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "db-move.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Migration", Namespace: ns, Name: "db-move", APIVersion: "stateshift.io/v1alpha1"},
		Reason:         "HoldLifted", Message: "scheduling hold lifted", Type: corev1.EventTypeNormal,
		FirstTimestamp: *at(4), LastTimestamp: *at(4), Count: 1,
	}))
	// An Event of another object must not show.
	must(t, env.Client.Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "other.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Migration", Namespace: ns, Name: "other"},
		Reason:         "Unrelated", Message: "x", Type: corev1.EventTypeWarning, LastTimestamp: *at(5),
	}))

	out, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "describe", "migration", "db-move", "-o", "json")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var d MigrationDescription
	must(t, json.Unmarshal([]byte(out), &d))
	var whats []string
	for _, e := range d.Timeline {
		whats = append(whats, e.What)
	}
	want := []string{"Created", "Started", "CheckpointReady=True (Verified)", "Armed", "HoldLifted", "Restored", "Completed", "Restored=True (PodsRestored)"}
	if strings.Join(whats, "|") != strings.Join(want, "|") {
		t.Errorf("timeline\n got %q\nwant %q", whats, want)
	}
	if d.Phase != v1alpha1.MigrationRestored || d.To != "member2" || len(d.Checkpoints) != 1 {
		t.Errorf("description %+v", d)
	}
	if last := d.Timeline[len(d.Timeline)-1]; last.Since.Duration != 9*time.Second {
		t.Errorf("last entry since %s, want 9s", last.Since.Duration)
	}

	table, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "describe", "migration", "db-move")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	for _, s := range []string{"+4s", "HoldLifted", "scheduling hold lifted", "checkpoint 3s, restore -, total 9s"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	if strings.Contains(table, "Unrelated") {
		t.Errorf("table shows another object's Event:\n%s", table)
	}

	_, err = run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "describe", "migration", "nope")
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("describe of a missing migration: %v", err)
	}
	_, err = run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "describe", "pod", "db-0")
	if err == nil || !strings.Contains(err.Error(), "migrations only") {
		t.Errorf("describe pod: %v", err)
	}
}

func TestMoveFollowsTheMigration(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "shop")
	kubeconfig := kubeconfigFor(t, env.Config)

	for _, tc := range []struct {
		name    string
		end     v1alpha1.MigrationPhase
		message string
		wantErr string
	}{
		{name: "restored", end: v1alpha1.MigrationRestored, message: "restored on member2"},
		{name: "fell back", end: v1alpha1.MigrationFellBack, message: "no verified checkpoint: started cold", wantErr: "ended FellBack: no verified checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			done := make(chan struct{})
			var out string
			var err error
			go func() {
				defer close(done)
				out, err = run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "move", "sts/db", "--to", "member2", "--wait", "--timeout", "50s")
			}()
			// Play the controller: the phases a move goes through.
			m := waitForMigration(ctx, t, env.Client, ns)
			if m.Spec.WorkloadRef.Kind != "StatefulSet" || m.Spec.WorkloadRef.Name != "db" || m.Spec.DestinationCluster != "member2" || m.Spec.Trigger != v1alpha1.TriggerManual {
				t.Errorf("created %+v", m.Spec)
			}
			for _, p := range []struct {
				phase v1alpha1.MigrationPhase
				msg   string
			}{{v1alpha1.MigrationCheckpointing, "fresh checkpoint on member1"}, {v1alpha1.MigrationArmed, "restore armed"}, {tc.end, tc.message}} {
				m.Status.Phase, m.Status.Message = p.phase, p.msg
				must(t, env.Client.Status().Update(ctx, m))
				time.Sleep(1500 * time.Millisecond) // the plugin polls each second
			}
			<-done
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("move: %v, want error %q", err, tc.wantErr)
			}
			for _, s := range []string{"created: StatefulSet db -> member2", "Checkpointing: fresh checkpoint on member1", "Armed: restore armed", string(tc.end) + ": " + tc.message} {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			must(t, env.Client.Delete(ctx, m))
		})
	}

	for _, args := range [][]string{{"move", "db", "--to", "member2"}, {"move", "pod/db-0", "--to", "member2"}, {"move", "sts/db"}} {
		if _, err := run(t, nil, append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestMoveWaitHasADeadline(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "shop")
	out, err := run(t, nil, "--kubeconfig", kubeconfigFor(t, env.Config), "-n", ns, "move", "deploy/web", "--to", "member2", "--wait", "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error(), "still - after") || !strings.Contains(err.Error(), "describe migration web-move-") {
		t.Errorf("move without a controller: %v\n%s", err, out)
	}
}

func waitForMigration(ctx context.Context, t *testing.T, c client.Client, ns string) *v1alpha1.Migration {
	t.Helper()
	var m *v1alpha1.Migration
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list := &v1alpha1.MigrationList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		if len(list.Items) == 1 {
			m = &list.Items[0]
		}
		return m != nil, nil
	})
	if err != nil {
		t.Fatalf("no Migration created: %v", err)
	}
	return m
}

func TestMain(m *testing.M) {
	// The plugin reads $HOME/.kube/config when --kubeconfig is absent; keep
	// tests away from the machine's own.
	_ = os.Setenv("KUBECONFIG", filepath.Join(os.TempDir(), "stateshiftctl-test-no-kubeconfig"))
	os.Exit(m.Run())
}

func TestStatusTellsArmedAgeAndLastMove(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t, "shop")
	kubeconfig := kubeconfigFor(t, env.Config)
	ctx := t.Context()
	now := time.Now()
	ago := func(d time.Duration) *metav1.Time { tm := metav1.NewTime(now.Add(-d)); return &tm }

	p := &v1alpha1.CheckpointPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: v1alpha1.CheckpointPolicySpec{
			ResourceSelectors: []v1alpha1.WorkloadSelector{{APIVersion: "apps/v1", Kind: "StatefulSet"}},
			Repository:        "registry.example/stateshift/shop",
			Schedule:          v1alpha1.CheckpointSchedule{Interval: metav1.Duration{Duration: time.Minute}},
		},
	}
	must(t, env.Client.Create(ctx, p))
	p.Status.Workloads = []v1alpha1.ProtectedWorkload{
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Clusters: []string{"member1"}, Armed: true, ArmedCheckpoint: "db-0-a",
			Pods: []v1alpha1.PodCheckpointRef{{Pod: "db-0", Cluster: "member1", Checkpoint: "db-0-a", Images: map[string]string{"db": "r/db@sha256:1"}, CompletionTime: ago(30 * time.Second)}}},
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "cache", Clusters: []string{"member2"}, Armed: true,
			Pods: []v1alpha1.PodCheckpointRef{{Pod: "cache-0", Cluster: "member2", Checkpoint: "cache-0-a", CompletionTime: ago(10 * time.Minute)}}},
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "queue", Clusters: []string{"member1"}, Armed: false, Message: "template changed: waiting for a checkpoint of the new template"},
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "jobs", Clusters: []string{"member2"}, Armed: true,
			Pods: []v1alpha1.PodCheckpointRef{{Pod: "jobs-0", Cluster: "member2", Checkpoint: "jobs-0-a", CompletionTime: ago(10 * time.Second)}},
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionProtected, Status: metav1.ConditionFalse, Reason: v1alpha1.ProtectedReasonFailing,
				Message: "the latest checkpoint jobs-0-b of pod jobs-0 on member2 failed: registry refused", LastTransitionTime: *ago(0)}}},
	}
	must(t, env.Client.Status().Update(ctx, p))
	must(t, env.Client.Create(ctx, &v1alpha1.Migration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-move-1"},
		Spec:       v1alpha1.MigrationSpec{WorkloadRef: v1alpha1.WorkloadReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db"}, DestinationCluster: "member1", Trigger: v1alpha1.TriggerManual},
	}))

	out, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "status", "-o", "json")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var rows []WorkloadStatus
	must(t, json.Unmarshal([]byte(out), &rows))
	got := map[string]WorkloadStatus{}
	for _, r := range rows {
		got[r.Name+"@"+r.Cluster] = r
	}
	if r := got["db@member1"]; r.State != "Protected" || r.CheckpointAge == nil || *r.CheckpointAge < 30*time.Second || *r.CheckpointAge > 2*time.Minute || r.LastMigration != "db-move-1" {
		t.Errorf("db: %+v", r)
	}
	if r := got["cache@member2"]; r.State != "Stale" || !strings.Contains(r.Reason, "schedule is every 1m0s") {
		t.Errorf("cache: %+v", r)
	}
	if r := got["queue@member1"]; r.State != "Unarmed" || !strings.Contains(r.Reason, "template changed") {
		t.Errorf("queue: %+v", r)
	}
	if r := got["jobs@member2"]; r.State != "Failing" || !strings.Contains(r.Reason, "registry refused") {
		t.Errorf("jobs: %+v", r)
	}
	if len(rows) != 4 {
		t.Errorf("%d rows, want 4: %+v", len(rows), rows)
	}

	table, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "status", "sts/db", "-o", "wide")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, s := range []string{"statefulset/db", "member1", "Protected", "db-move-1", "db-0/db=r/db@sha256:1"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	if strings.Contains(table, "cache") {
		t.Errorf("status sts/db shows other workloads:\n%s", table)
	}
	if _, err := run(t, nil, "--kubeconfig", kubeconfig, "-n", ns, "status", "sts/nope"); err == nil || !strings.Contains(err.Error(), "not selected by any CheckpointPolicy") {
		t.Errorf("status of an unprotected workload: %v", err)
	}
}
