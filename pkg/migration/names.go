package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/karmada-io/karmada/pkg/util/names"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// The keys are defined in pkg/apis (well_known_constants.go).
const (
	LabelWorkload  = v1alpha1.LabelWorkload
	LabelCluster   = v1alpha1.LabelCluster
	LabelPolicy    = v1alpha1.LabelPolicy
	LabelPod       = v1alpha1.LabelPod
	LabelMigration = v1alpha1.LabelMigration
	LabelRestore   = v1alpha1.LabelRestore
	// LabelDelivery with value DeliveryProxy marks the Checkpoints the
	// checkpointdelivery controller delivers to their member.
	LabelDelivery = v1alpha1.KeyPrefix + "delivery"
	// LabelManagedBy with value ManagedBy marks every object the controller owns.
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedBy            = "stateshift"
	AnnotationMove       = v1alpha1.AnnotationMove
	AnnotationScheduling = v1alpha1.AnnotationHeldBy
)

// workloadLabel is the value of LabelWorkload: label-safe, kind and name.
func workloadLabel(kind, name string) string {
	return truncate(strings.ToLower(kind)+"."+name, 63)
}

// BindingName is Karmada's ResourceBinding name for a workload template.
func BindingName(kind, name string) string { return names.GenerateBindingName(kind, name) }

// checkpointName names a pod's next Checkpoint from the one before it (and
// the Migration asking for it, if any), label-safe (<= 63) as a restore plan
// requires.
func checkpointName(pod, cluster, migration, previous string) string {
	h := sha256.Sum256([]byte(pod + "\x00" + cluster + "\x00" + migration + "\x00" + previous))
	return strings.TrimRight(truncate(pod, 50), "-.") + "-" + hex.EncodeToString(h[:])[:10]
}

// propagationPolicyName is the PropagationPolicy that carries the
// namespace's Checkpoints labelled for cluster to that cluster.
func propagationPolicyName(cluster string) string {
	return truncate("stateshift-checkpoints-"+cluster, 253)
}

// pullSecretPropagationName is the PropagationPolicy that carries the
// namespace's pull Secret secret to members; a name too long for the
// prefix ends in a hash of it, so two long names cannot share one.
func pullSecretPropagationName(secret string) string {
	name := "stateshift-pull-secret-" + secret
	if len(name) <= 253 {
		return name
	}
	h := sha256.Sum256([]byte(secret))
	return strings.TrimRight(name[:241], "-.") + "-" + hex.EncodeToString(h[:])[:10]
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// moveName names the Migration of one move the controller saw. It is derived
// from what identifies the move, so that two reconciles racing on the same
// change (a binding update and a cluster taint arrive together) create one
// Migration: the second Create fails with AlreadyExists.
func moveName(workload, kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strings.TrimRight(truncate(workload, 40), "-.") + "-" + kind + "-" + hex.EncodeToString(h.Sum(nil))[:10]
}

// newest is the most recently created of items (ties broken by name, so
// every reconcile picks the same one), or nil. Both the Migration before a
// move and the Checkpoint before a round are found this way.
func newest[T any, P interface {
	*T
	GetCreationTimestamp() metav1.Time
	GetName() string
}](items []T) P {
	var last P
	for i := range items {
		it := P(&items[i])
		if last == nil {
			last = it
			continue
		}
		a, b := last.GetCreationTimestamp(), it.GetCreationTimestamp()
		if a.Before(&b) || (a.Equal(&b) && last.GetName() < it.GetName()) {
			last = it
		}
	}
	return last
}

// MoveSources reads the source clusters of an AnnotationMove value
// ("member1,member3->member2"); nil when there is none.
func MoveSources(move string) []string {
	from, _, ok := strings.Cut(move, "->")
	if !ok || from == "" {
		return nil
	}
	return strings.Split(from, ",")
}
