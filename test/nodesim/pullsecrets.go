package nodesim

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// pullSecretTimeout bounds the read of one of a pod's pull Secrets.
const pullSecretTimeout = 10 * time.Second

// pullKeychain is what the kubelet pulls a pod's images with: the
// credentials of the pod's imagePullSecrets (dockerconfigjson Secrets of
// its namespace), then the node's own. As with the kubelet, a Secret that
// cannot be read or parsed is skipped with a log line and the pull goes on
// without it: a registry that wants credentials then refuses the pull
// (ErrImagePull), which is how a missing pull Secret shows.
func (n *Node) pullKeychain(ctx context.Context, pod *corev1.Pod) authn.Keychain {
	var chains []authn.Keychain
	for _, ref := range pod.Spec.ImagePullSecrets {
		if k := n.podPullSecret(ctx, pod.Namespace, ref.Name); k != nil {
			chains = append(chains, k)
		}
	}
	return authn.NewMultiKeychain(append(chains, n.reg.keychain)...)
}

// podPullSecret reads one pull Secret of namespace ns; nil when it cannot
// be used.
func (n *Node) podPullSecret(ctx context.Context, ns, name string) authn.Keychain {
	logger := klog.FromContext(ctx).WithValues("secret", ns+"/"+name)
	ctx, cancel := context.WithTimeout(ctx, pullSecretTimeout)
	defer cancel()
	s, err := n.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		logger.Info("Unable to retrieve pull secret, the image pull may not succeed", "err", err)
		return nil
	}
	if s.Type != corev1.SecretTypeDockerConfigJson {
		logger.Info("Pull secret is not a dockerconfigjson, ignored", "type", s.Type)
		return nil
	}
	k, err := parseDockerConfig(s.Data[corev1.DockerConfigJsonKey], "pull secret "+ns+"/"+name)
	if err != nil {
		logger.Info("Pull secret does not parse, ignored", "err", err)
		return nil
	}
	return k
}
