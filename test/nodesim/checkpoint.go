package nodesim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// checkpointContainer is the kubelet's CheckpointContainer plus the runtime's
// dump: it names the archive as the kubelet does, applies the CRI timeout
// rules of k8s.io/cri-client, and writes the archive. Runtime errors come back
// worded as the kubelet receives them over gRPC.
func (n *Node) checkpointContainer(ctx context.Context, pod *corev1.Pod, containerName string, timeout int64) (string, error) {
	if timeout < 0 {
		return "", errors.New("CheckpointContainer requires the timeout value to be > 0")
	}
	// The CRI client never gives the runtime less than its default timeout.
	d := n.cfg.RuntimeRequestTimeout
	if timeout > int64(d/time.Second) {
		d = time.Duration(timeout) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	key := pod.Namespace + "/" + pod.Name
	n.mu.Lock()
	ps := n.pods[key]
	var c *container
	if ps != nil && ps.uid == pod.UID {
		c = ps.container(containerName)
	}
	if c == nil || !c.running {
		n.mu.Unlock()
		return "", fmt.Errorf("container %v not found", containerName)
	}
	// CRI-O pauses the container for the dump and lets it run on afterwards.
	c.paused = true
	spec := ArchiveSpec{
		Namespace: pod.Namespace, Pod: pod.Name, PodUID: string(pod.UID), Container: c.name,
		ContainerID: c.id, Image: c.image, ImageID: c.imageHexID,
		Created: c.created, Seed: c.seed, Counter: c.counter, MemoryBytes: c.memBytes,
		RestoredAt: c.restoredAt,
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		c.paused = false
		n.mu.Unlock()
	}()
	for _, cs := range pod.Spec.Containers {
		if cs.Name == containerName {
			spec.Command = append(append([]string(nil), cs.Command...), cs.Args...)
			spec.Mounts = volumeMounts(pod, cs)
		}
	}

	location := filepath.Join(n.cfg.CheckpointDir, fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar",
		pod.Name, pod.Namespace, containerName, time.Now().Format(time.RFC3339)))
	start := time.Now()
	if err := n.dump(ctx, location, spec); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
		}
		return "", fmt.Errorf("rpc error: code = Unknown desc = failed to checkpoint container %s: %w", spec.ContainerID, err)
	}
	klog.FromContext(ctx).Info("Checkpointed container", "pod", key, "container", containerName,
		"archive", location, "counter", spec.Counter, "duration", time.Since(start))
	return location, nil
}

// dump is the runtime's part: honour injected faults, then stream the archive
// into a root-only file, removing it if anything fails.
func (n *Node) dump(ctx context.Context, location string, spec ArchiveSpec) (err error) {
	n.injectMu.Lock()
	injectErr, delay := n.injectErr, n.injectDelay
	n.injectMu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if injectErr != nil {
		return injectErr
	}
	if err := os.MkdirAll(n.cfg.CheckpointDir, 0o700); err != nil {
		return fmt.Errorf("create checkpoint directory: %w", err)
	}
	if err := os.Chmod(n.cfg.CheckpointDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(location, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", location, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", location, cerr)
		}
		if err != nil {
			_ = os.Remove(location)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	spec.CheckpointedAt = time.Now()
	if _, err := WriteArchive(ctxWriter{ctx, f}, spec); err != nil {
		return err
	}
	return nil
}

// ctxWriter stops a long dump when its deadline passes.
type ctxWriter struct {
	ctx context.Context
	f   *os.File
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}
