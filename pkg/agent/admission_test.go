package agent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/testenv"
)

const agentUser = "system:serviceaccount:stateshift-system:stateshift-checkpoint-agent"

// as is a client that authenticates as user (impersonation by the test's
// admin), with groups and user extra as a token would carry them.
func as(t *testing.T, env *testenv.Env, user string, groups []string, extra map[string][]string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated"), Extra: extra}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	must(t, err)
	return c
}

// aggregate does what kube-controller-manager's clusterrole-aggregation
// controller does (envtest runs no controller manager): fill an aggregated
// ClusterRole with the rules of the ClusterRoles its selectors match.
func aggregate(t *testing.T, c client.Client, name string) {
	t.Helper()
	role := &rbacv1.ClusterRole{}
	must(t, c.Get(t.Context(), client.ObjectKey{Name: name}, role))
	var rules []rbacv1.PolicyRule
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		must(t, err)
		list := &rbacv1.ClusterRoleList{}
		must(t, c.List(t.Context(), list, client.MatchingLabelsSelector{Selector: s}))
		for _, r := range list.Items {
			if r.Name != name {
				rules = append(rules, r.Rules...)
			}
		}
	}
	role.Rules = rules
	must(t, c.Update(t.Context(), role))
}

func bind(t *testing.T, c client.Client, ns, user, clusterRole string) {
	t.Helper()
	must(t, c.Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + clusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}))
}

func wantRefused(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want refused", what)
		return
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: refused with %q, want it to say %q", what, err, s)
		}
	}
}

// TestSecurityCheckpointAdmission applies artifacts/security to a real
// kube-apiserver and tries, as different users, what issue 12 says must be
// refused: creating a Checkpoint is like pods/exec (edit and admin, not
// view), and beyond RBAC only stateshift's identities and listed subjects
// may create one or change its spec; the agent's status writes are bound
// to its own node and the Checkpoint's repository.
func TestSecurityCheckpointAdmission(t *testing.T) {
	env := testenv.Start(t)
	admin := env.Client
	env.Namespace(t, agentNS)
	env.Namespace(t, appNS)
	for _, f := range []string{"agent/rbac.yaml", "security/roles.yaml", "security/checkpoint-admission.yaml"} {
		applyYAML(t, admin, filepath.Join(testenv.Root(), "artifacts", f))
	}
	for _, r := range []string{"view", "edit", "admin"} {
		aggregate(t, admin, r)
	}
	bind(t, admin, appNS, "alice", "edit")
	bind(t, admin, appNS, "bob", "view")
	bind(t, admin, appNS, "carol", "edit")
	alice := as(t, env, "alice", nil, nil)
	bob := as(t, env, "bob", nil, nil)
	carol := as(t, env, "carol", []string{"stateshift:checkpoint-creators"}, nil)
	ctx := context.Background()
	cp := func(name string) *v1alpha1.Checkpoint {
		return &v1alpha1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
			Spec: v1alpha1.CheckpointSpec{PodName: "db-0", Repository: "registry.example.com/shop/db"}}
	}

	// The policy becomes active once the API server has loaded it.
	eventually(t, 30*time.Second, func() error {
		err := alice.Create(ctx, cp("probe"))
		if err == nil {
			_ = admin.Delete(ctx, cp("probe"))
			return fmt.Errorf("the admission policy is not active yet")
		}
		return nil
	})

	t.Run("an editor is refused with the reason", func(t *testing.T) {
		wantRefused(t, "alice creates", alice.Create(ctx, cp("by-alice")),
			"ValidatingAdmissionPolicy 'stateshift-checkpoint-creators'", "dumps the memory of pod db-0", "alice may not create one",
			"stateshift-system/stateshift-checkpoint-creators")
	})
	t.Run("a viewer may read but not create, like pods/exec", func(t *testing.T) {
		wantRefused(t, "bob creates", bob.Create(ctx, cp("by-bob")), `cannot create resource "checkpoints"`)
		must(t, bob.List(ctx, &v1alpha1.CheckpointList{}, client.InNamespace(appNS)))
	})
	t.Run("a listed group may create", func(t *testing.T) {
		must(t, carol.Create(ctx, cp("by-carol")))
	})
	t.Run("a user listed later may create; spec changes are checked, metadata is not", func(t *testing.T) {
		params := &corev1.ConfigMap{}
		must(t, admin.Get(ctx, client.ObjectKey{Namespace: agentNS, Name: "stateshift-checkpoint-creators"}, params))
		params.Data["users"] += ", alice"
		must(t, admin.Update(ctx, params))
		eventually(t, 30*time.Second, func() error { return alice.Create(ctx, cp("by-alice")) })
		params.Data["users"] = strings.TrimSuffix(params.Data["users"], ", alice")
		must(t, admin.Update(ctx, params))
		eventually(t, 30*time.Second, func() error {
			if err := alice.Create(ctx, cp("by-alice-again")); err == nil {
				return fmt.Errorf("alice still allowed after her removal")
			}
			return nil
		})
		got := &v1alpha1.Checkpoint{}
		must(t, alice.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "by-carol"}, got))
		got.Labels = map[string]string{"team": "shop"}
		must(t, alice.Update(ctx, got))
		got.Spec.Repository = "attacker.example.com/loot"
		wantRefused(t, "alice retargets carol's Checkpoint", alice.Update(ctx, got), "alice may not create one or change its spec")
	})

	// The agent's status writes, as a pod's token of node-a or node-b.
	agentGroups := []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNS}
	onNode := func(node string) client.Client {
		return as(t, env, agentUser, agentGroups, map[string][]string{"authentication.kubernetes.io/node-name": {node}})
	}
	agentA, agentB := onNode("node-a"), onNode("node-b")
	noNode := as(t, env, agentUser, agentGroups, nil)
	status := func(c client.Client, name string, mutate func(*v1alpha1.CheckpointStatus)) error {
		got := &v1alpha1.Checkpoint{}
		must(t, admin.Get(ctx, client.ObjectKey{Namespace: appNS, Name: name}, got))
		mutate(&got.Status)
		return c.Status().Update(ctx, got)
	}
	image := "registry.example.com/shop/db@sha256:" + strings.Repeat("ab", 32)
	t.Run("agent status writes are bound to its node and repository", func(t *testing.T) {
		// Another node's agent says why it waits, without claiming: allowed.
		must(t, status(agentB, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.Phase, s.Message = v1alpha1.CheckpointPending, "runs on node node-a: waiting for that node's checkpoint agent"
		}))
		wantRefused(t, "agent of node-b claims for node-a", status(agentB, "by-carol", func(s *v1alpha1.CheckpointStatus) { s.NodeName = "node-a" }),
			"the checkpoint agent of node node-b may not claim a Checkpoint for node node-a")
		wantRefused(t, "a token without a node", status(noNode, "by-carol", func(s *v1alpha1.CheckpointStatus) { s.NodeName = "node-a" }),
			"carries no node name")
		wantRefused(t, "images without a claim", status(agentB, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.Containers = []v1alpha1.ContainerCheckpoint{{Name: "db", Image: image}}
		}), "may only be recorded by the agent that claimed")
		must(t, status(agentA, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.NodeName, s.Phase = "node-a", v1alpha1.CheckpointPushing
		}))
		wantRefused(t, "agent of node-b overwrites node-a's claim", status(agentB, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.NodeName, s.Containers = "node-b", []v1alpha1.ContainerCheckpoint{{Name: "db", Image: image}}
		}), "may not write the status of a Checkpoint that node node-a executes")
		wantRefused(t, "an image of another repository", status(agentA, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.Containers = []v1alpha1.ContainerCheckpoint{{Name: "db", Image: "registry.example.com/other-tenant/db@sha256:" + strings.Repeat("cd", 32)}}
		}), "may only name images registry.example.com/shop/db@sha256:")
		// Stray images (pushed by failed attempts) are deleted by retention
		// like results: the same rules hold for them.
		wantRefused(t, "a stray image of another repository", status(agentA, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.StrayImages = []v1alpha1.StrayImage{{Container: "db", Image: "registry.example.com/other-tenant/db@sha256:" + strings.Repeat("cd", 32)}}
		}), "status.containers and status.strayImages may only name images registry.example.com/shop/db@sha256:")
		wantRefused(t, "a stray image by another node's agent", status(agentB, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.StrayImages = []v1alpha1.StrayImage{{Container: "db", Image: image}}
		}), "the checkpoint agent of node node-b may not")
		stray := "registry.example.com/shop/db@sha256:" + strings.Repeat("ef", 32)
		must(t, status(agentA, "by-carol", func(s *v1alpha1.CheckpointStatus) {
			s.Phase, s.Containers = v1alpha1.CheckpointSucceeded, []v1alpha1.ContainerCheckpoint{{Name: "db", Image: image}}
			s.StrayImages = []v1alpha1.StrayImage{{Container: "db", Image: stray, Attempt: 1, Reason: "VerifyFailed"}}
		}))
	})
}
