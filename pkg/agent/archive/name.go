package archive

import "strings"

// HoldsContainer says whether the container name recorded in an archive's
// config.dump is the given container of the given pod. CRI-O records the
// name it gave the container, k8s_<container>_<pod>_<namespace>_<pod
// uid>_<attempt> (the kubelet's naming, which no Kubernetes name can make
// ambiguous: none of the three may contain "_"); runtimes that record the
// bare container name are accepted as that container.
func HoldsContainer(recorded, namespace, pod, container string) bool {
	if recorded == container {
		return true
	}
	parts := strings.Split(recorded, "_")
	if len(parts) != 6 || parts[0] != "k8s" {
		return false
	}
	return parts[1] == container && parts[2] == pod && parts[3] == namespace
}
