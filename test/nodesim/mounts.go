package nodesim

import (
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// volumeMounts are the bind mounts the kubelet would hand the runtime for a
// container's volumes, with the kubelet's host paths.
func volumeMounts(pod *corev1.Pod, c corev1.Container) []specs.Mount {
	kinds := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		kinds[v.Name] = volumePlugin(v)
	}
	var out []specs.Mount
	for _, vm := range c.VolumeMounts {
		src := path.Join("/var/lib/kubelet/pods", string(pod.UID), "volumes", kinds[vm.Name], vm.Name)
		if vm.SubPath != "" {
			src = path.Join(src, vm.SubPath)
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if vm.ReadOnly {
			opts[2] = "ro"
		}
		out = append(out, specs.Mount{Destination: vm.MountPath, Type: "bind", Source: src, Options: opts})
	}
	return out
}

func volumePlugin(v corev1.Volume) string {
	switch {
	case v.EmptyDir != nil:
		return "kubernetes.io~empty-dir"
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap"
	case v.Secret != nil:
		return "kubernetes.io~secret"
	case v.Projected != nil:
		return "kubernetes.io~projected"
	case v.PersistentVolumeClaim != nil:
		return "kubernetes.io~csi"
	case v.HostPath != nil:
		return "kubernetes.io~host-path"
	}
	return "kubernetes.io~other"
}
