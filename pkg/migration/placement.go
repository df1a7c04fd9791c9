package migration

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/util"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// A person's Migration names a destination, and the controller patches the
// binding's placement there with its own cluster-wide rights. Without a
// check that would bypass the workload's PropagationPolicy (data
// residency, dedicated clusters): a destination must be one the policy's
// placement (Karmada copies it into the binding's spec.placement) could
// choose itself. The admission webhook (PlacementWebhookPath, served by
// interpreter-webhook) refuses such a Migration when it is created; the
// controller checks again before it starts the move.

// PlacementWebhookPath is where interpreter-webhook serves the check.
const PlacementWebhookPath = "/validate-migration"

// PlacementRefusal says why placement cannot put a workload on cluster, ""
// when it can: the cluster affinity (names, exclusions, label and field
// selectors, as Karmada's scheduler matches them; with clusterAffinities
// any of the terms) and the cluster's NoSchedule and NoExecute taints
// against the placement's tolerations.
func PlacementRefusal(placement *policyv1alpha1.Placement, cluster *clusterv1alpha1.Cluster) string {
	if placement == nil {
		return ""
	}
	if len(placement.ClusterAffinities) > 0 {
		var terms []string
		for _, term := range placement.ClusterAffinities {
			if util.ClusterMatches(cluster, term.ClusterAffinity) {
				return taintRefusal(placement, cluster)
			}
			terms = append(terms, term.AffinityName)
		}
		return fmt.Sprintf("cluster %s matches none of the placement's clusterAffinities (%s)", cluster.Name, strings.Join(terms, ", "))
	}
	if a := placement.ClusterAffinity; a != nil && !util.ClusterMatches(cluster, *a) {
		return fmt.Sprintf("cluster %s is outside the placement's clusterAffinity (clusterNames %v, exclude %v, labelSelector %v, fieldSelector %v)",
			cluster.Name, a.ClusterNames, a.ExcludeClusters, a.LabelSelector, a.FieldSelector)
	}
	return taintRefusal(placement, cluster)
}

// spreadRefusal says why a move of the whole workload to cluster breaks
// the placement's spread constraints, "" when it does not. A person's move
// puts every replica on one cluster: one cluster, one region, one
// provider, one value of any label, and only the cluster's own zones. A
// constraint asking for more groups than that would leave Karmada's
// scheduler unable to place the workload at all after the move (the
// binding keeps the constraint), so the move is refused up front.
func spreadRefusal(placement *policyv1alpha1.Placement, cluster *clusterv1alpha1.Cluster) string {
	if placement == nil {
		return ""
	}
	for _, sc := range placement.SpreadConstraints {
		groups, by := 1, "label "+sc.SpreadByLabel
		if sc.SpreadByField != "" {
			by = "field " + string(sc.SpreadByField)
		}
		if sc.SpreadByField == policyv1alpha1.SpreadByFieldZone {
			groups = max(1, len(cluster.Spec.Zones))
		}
		if sc.MinGroups > groups {
			return fmt.Sprintf("the placement spreads the workload over at least %d groups by %s (spreadConstraints), and on cluster %s it would have %d",
				sc.MinGroups, by, cluster.Name, groups)
		}
	}
	return ""
}

// taintRefusal names the first taint of cluster that keeps Karmada's
// scheduler from placing there and that the placement does not tolerate.
func taintRefusal(placement *policyv1alpha1.Placement, cluster *clusterv1alpha1.Cluster) string {
	for i := range cluster.Spec.Taints {
		taint := &cluster.Spec.Taints[i]
		if taint.Effect != corev1.TaintEffectNoSchedule && taint.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range placement.ClusterTolerations {
			tolerated = tolerated || placement.ClusterTolerations[j].ToleratesTaint(klog.Background(), taint, false)
		}
		if !tolerated {
			return fmt.Sprintf("cluster %s has taint %s=%s:%s, which the placement does not tolerate", cluster.Name, taint.Key, taint.Value, taint.Effect)
		}
	}
	return ""
}

// DestinationRefusal says why a person's Migration may not go where it
// names, "" when it may (or when it names no destination). rb is the
// workload's binding; its spec.placement is the policy's placement.
func DestinationRefusal(ctx context.Context, r client.Reader, m *v1alpha1.Migration, rb *workv1alpha2.ResourceBinding) (string, error) {
	dest := m.Spec.DestinationCluster
	if dest == "" || (m.Spec.Trigger != "" && m.Spec.Trigger != v1alpha1.TriggerManual) {
		return "", nil
	}
	cluster := &clusterv1alpha1.Cluster{}
	if err := r.Get(ctx, client.ObjectKey{Name: dest}, cluster); apierrors.IsNotFound(err) {
		return fmt.Sprintf("destination cluster %s does not exist", dest), nil
	} else if err != nil {
		return "", fmt.Errorf("read destination cluster %s: %w", dest, err)
	}
	why := PlacementRefusal(rb.Spec.Placement, cluster)
	if why == "" {
		why = spreadRefusal(rb.Spec.Placement, cluster)
	}
	if why == "" {
		return "", nil
	}
	return fmt.Sprintf("Migration %s may not move %s %s to %s: %s; a move must stay where its PropagationPolicy may place it (change the policy's placement instead)",
		m.Name, m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name, dest, why), nil
}

// refuseOutsidePlacement fails a person's Migration whose destination the
// placement does not allow (admission refuses it first; this is the check
// for a Migration created while the webhook was not installed).
func (r MigrationReconciler) refuseOutsidePlacement(ctx context.Context, mv *move) (bool, ctrl.Result, error) {
	why, err := DestinationRefusal(ctx, r.reader(), mv.m, mv.rb)
	if err != nil || why == "" {
		return err != nil, ctrl.Result{}, err
	}
	return true, ctrl.Result{}, r.fail(mv.m, "OutsidePlacement", why)
}

// placementValidator is the admission webhook for Migrations.
type placementValidator struct {
	reader  client.Reader
	decoder admission.Decoder
}

// NewPlacementWebhook is the validating webhook for Migrations, reading
// bindings and clusters with r (uncached: one request, two reads).
func NewPlacementWebhook(r client.Reader, s *runtime.Scheme) *admission.Webhook {
	return &admission.Webhook{Handler: &placementValidator{reader: r, decoder: admission.NewDecoder(s)}}
}

// Handle implements admission.Handler.
func (v *placementValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create { // spec is immutable
		return admission.Allowed("")
	}
	m := &v1alpha1.Migration{}
	if err := v.decoder.Decode(req, m); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	rb := &workv1alpha2.ResourceBinding{}
	key := client.ObjectKey{Namespace: m.Namespace, Name: BindingName(m.Spec.WorkloadRef.Kind, m.Spec.WorkloadRef.Name)}
	if err := v.reader.Get(ctx, key, rb); apierrors.IsNotFound(err) {
		return admission.Allowed("") // not propagated: the controller says NotScheduled
	} else if err != nil {
		return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("read the workload's binding: %w", err))
	}
	why, err := DestinationRefusal(ctx, v.reader, m, rb)
	if err != nil {
		return admission.Errored(http.StatusServiceUnavailable, err)
	}
	if why != "" {
		return admission.Denied(why)
	}
	return admission.Allowed("")
}
