package nodesim

import (
	"context"
	"fmt"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const leaseDurationSeconds = 40

// register creates the Node (or adopts an existing one of the same name, as a
// restarted kubelet does) and posts a Ready status.
func (n *Node) register(ctx context.Context) error {
	labels := map[string]string{
		"kubernetes.io/hostname":          n.cfg.NodeName,
		"kubernetes.io/os":                "linux",
		"kubernetes.io/arch":              runtime.GOARCH,
		"beta.kubernetes.io/os":           "linux",
		"beta.kubernetes.io/arch":         runtime.GOARCH,
		"nodesim.stateshift.io/simulated": "true",
	}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.cfg.NodeName, Labels: labels}}
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 8, Cap: 5 * time.Second},
		func(ctx context.Context) (bool, error) {
			_, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			klog.FromContext(ctx).Error(err, "Register node, will retry")
			return false, nil
		})
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.cfg.NodeName, err)
	}
	// The node lifecycle controller edits a new Node at once (taints), so the
	// first status update can conflict: retry it as the kubelet does.
	if err := retry.RetryOnConflict(retry.DefaultBackoff, func() error { return n.updateNodeStatus(ctx) }); err != nil {
		return fmt.Errorf("register node %s: %w", n.cfg.NodeName, err)
	}
	return nil
}

// updateNodeStatus posts the node's addresses, capacity, version info and
// conditions with a fresh heartbeat time.
func (n *Node) updateNodeStatus(ctx context.Context) error {
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node: %w", err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	s := &node.Status
	s.Capacity = n.cfg.Capacity.DeepCopy()
	s.Allocatable = n.cfg.Capacity.DeepCopy()
	s.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.cfg.IP},
		{Type: corev1.NodeHostName, Address: n.cfg.NodeName},
	}
	s.DaemonEndpoints.KubeletEndpoint.Port = int32(n.cfg.Port)
	s.NodeInfo = corev1.NodeSystemInfo{
		MachineID:               "nodesim-" + n.cfg.NodeName,
		SystemUUID:              "nodesim-" + n.cfg.NodeName,
		BootID:                  "nodesim-" + n.cfg.NodeName,
		KernelVersion:           "6.13.0-nodesim",
		OSImage:                 "nodesim (Debian GNU/Linux 12)",
		ContainerRuntimeVersion: ContainerRuntimeVersion,
		KubeletVersion:          KubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            runtime.GOARCH,
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for _, c := range conds {
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		for _, old := range s.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		setNodeCondition(s, c)
	}
	if _, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	return nil
}

func setNodeCondition(s *corev1.NodeStatus, c corev1.NodeCondition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == c.Type {
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

// heartbeat renews the node Lease and status, as the node lifecycle
// controller expects of a live kubelet.
func (n *Node) heartbeat(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for {
		if err := n.renewLease(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Renew node lease")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.cfg.HeartbeatInterval):
		}
		if err := n.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Node status heartbeat")
		}
	}
}

func (n *Node) renewLease(ctx context.Context) error {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: n.cfg.NodeName, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.cfg.NodeName),
				LeaseDurationSeconds: ptr.To[int32](leaseDurationSeconds),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create lease: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease: %w", err)
	}
	lease.Spec.HolderIdentity = ptr.To(n.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDurationSeconds)
	lease.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}
