package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/restore"
)

// armedPlans remembers, for each restore OverridePolicy, the inputs of the
// last arm that left it as they ask and the policy's resourceVersion after
// it. The restore plan controller arms every workload of a policy at every
// reconcile; building the wanted policy converts the whole template to
// unstructured and comparing converts both specs: at 1,000 workloads that
// was 9% of the controller's CPU during a round, nearly all of it to
// confirm that nothing changed. The entry is only trusted while the
// policy's resourceVersion is the one it names, so any write to the policy
// (ours, a person's, a restore after the controller's restart) and any
// change of the inputs (template version, plan, exclusions, receivers,
// owner) build and compare again.
type armedPlans struct {
	mu      sync.Mutex
	entries map[string]armedPlan
}

type armedPlan struct {
	resourceVersion, inputs string
}

// maxArmedPlans bounds the memory: past it the memo starts empty again (a
// withdrawn policy's entry is otherwise never dropped).
const maxArmedPlans = 50000

var plansArmed = &armedPlans{entries: map[string]armedPlan{}}

// armInputs is the fingerprint of what arm builds the policy from; "" (not
// remembered) when the template has no version (not read from an API
// server) or the inputs cannot be encoded.
func armInputs(owner *v1alpha1.CheckpointPolicy, w *workload, plan *restore.Plan, exclude []string, receivers []policyv1alpha1.RuleWithCluster) string {
	if w.obj.GetUID() == "" || w.obj.GetResourceVersion() == "" {
		return ""
	}
	in := struct {
		Template, Version, Owner string
		Plan                     *restore.Plan
		Exclude                  []string
		Receivers                []policyv1alpha1.RuleWithCluster
	}{Template: string(w.obj.GetUID()), Version: w.obj.GetResourceVersion(), Plan: plan, Exclude: exclude, Receivers: receivers}
	if owner != nil {
		in.Owner = string(owner.UID)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// unchanged says whether op was left by an arm with these inputs and has
// not been written since.
func (a *armedPlans) unchanged(op *policyv1alpha1.OverridePolicy, inputs string) bool {
	if op == nil || op.UID == "" || inputs == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[string(op.UID)]
	return ok && e.inputs == inputs && e.resourceVersion == op.ResourceVersion
}

// remember records that op, at its current resourceVersion, is what these
// inputs arm.
func (a *armedPlans) remember(op *policyv1alpha1.OverridePolicy, inputs string) {
	if op == nil || op.UID == "" || op.ResourceVersion == "" || inputs == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) >= maxArmedPlans {
		a.entries = map[string]armedPlan{}
	}
	a.entries[string(op.UID)] = armedPlan{resourceVersion: op.ResourceVersion, inputs: inputs}
}

// recentlyCreated holds objects this process created until its cache
// shows them. A reconcile in between (another reconciler, the next event)
// found none in the cache and created the same object again: refused
// AlreadyExists (and, for a restore plan, read live), requests of Karmada's
// API server and its admission webhook for nothing: for one restore plan in
// eight of a 1,000-workload first round, for one detected move in five of a
// storm. An entry is used for recentCreateTTL at most: an object deleted
// before the cache ever showed it is created again after that, at the
// latest.
type recentlyCreated[T client.Object] struct {
	mu sync.Mutex
	m  map[types.NamespacedName]recentCreate[T]
}

type recentCreate[T client.Object] struct {
	obj T
	at  time.Time
}

const recentCreateTTL = 10 * time.Second

func (p *recentlyCreated[T]) created(obj T, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[types.NamespacedName]recentCreate[T]{}
	}
	for k, e := range p.m { // a few entries: those created in the last seconds
		if now.Sub(e.at) > recentCreateTTL {
			delete(p.m, k)
		}
	}
	p.m[client.ObjectKeyFromObject(obj)] = recentCreate[T]{obj: obj.DeepCopyObject().(T), at: now}
}

// recent is a copy of the object created at key within recentCreateTTL.
func (p *recentlyCreated[T]) recent(key types.NamespacedName, now time.Time) (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[key]
	if !ok || now.Sub(e.at) > recentCreateTTL {
		var none T
		return none, false
	}
	return e.obj.DeepCopyObject().(T), true
}

// forget drops key's entry: the cache shows the object, or it was deleted.
func (p *recentlyCreated[T]) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, key)
}
