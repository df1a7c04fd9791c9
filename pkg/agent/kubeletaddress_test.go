package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// countingReader counts the agent's uncached reads.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// The kubelet's address is read from the Node once per nodeAddressTTL,
// not at every checkpoint, and read again after it or after a failed
// kubelet call: a node registered again with a new address is followed.
func TestKubeletAddressIsReadOncePerTTL(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.2"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
	}}
	c := fake.NewClientBuilder().WithObjects(node).WithStatusSubresource(node).Build()
	reader := &countingReader{Reader: c}
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	r := &Reconciler{NodeName: "n1", Reader: reader, now: func() time.Time { return now }}
	for range 100 {
		if host, port, err := r.kubeletAddress(t.Context()); err != nil || host != "127.0.0.2" || port != 10250 {
			t.Fatalf("%s:%d, %v", host, port, err)
		}
	}
	if reader.gets != 1 {
		t.Fatalf("%d reads of the Node for 100 checkpoints, want 1", reader.gets)
	}
	node.Status.Addresses[0].Address = "127.0.0.3"
	if err := c.Status().Update(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	now = now.Add(nodeAddressTTL)
	if host, _, err := r.kubeletAddress(t.Context()); err != nil || host != "127.0.0.3" || reader.gets != 2 {
		t.Fatalf("after the TTL: %s, %v, %d reads", host, err, reader.gets)
	}
	// A failed kubelet call forgets it at once.
	r.kubelet.forget()
	if _, _, err := r.kubeletAddress(t.Context()); err != nil || reader.gets != 3 {
		t.Fatalf("after a failed call: %v, %d reads", err, reader.gets)
	}
}
