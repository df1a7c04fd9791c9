// Package doctor checks, one line each, what the checkpoint agent needs on
// its node: buildah and its storage, fuse-overlayfs, the checkpoint folder,
// the kubelet (reachable, trusted, and authorizing the agent) and the
// registry (reachable, and accepting the credentials), and the member's
// pod-restore webhook registration. Every failed line says how to fix it.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/stateshift/stateshift/pkg/agent/kubelet"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
)

// Result of one check.
type Result struct {
	Name   string
	OK     bool
	Detail string // what was found
	Fix    string // how to fix it, when not OK
}

// Inputs are what the checks look at; zero values skip nothing but say
// what is missing.
type Inputs struct {
	Buildah        string // program
	BuildahRoot    string
	BuildahRunRoot string
	StorageDriver  string
	CheckpointDir  string
	// Kubelet is the client the agent uses; KubeletHost/Port its node's address.
	Kubelet     *kubelet.Client
	KubeletHost string
	KubeletPort int
	// Repository to check push access to, with optional credentials.
	Repository string
	Registry   *registryauth.Config
	Insecure   bool
	// PodRestore is the member's MutatingWebhookConfiguration
	// stateshift-pod-restore as read (nil with PodRestoreErr when it could
	// not be).
	PodRestore    *admissionregistrationv1.MutatingWebhookConfiguration
	PodRestoreErr error
}

// Run performs every check in order.
func Run(ctx context.Context, in Inputs) []Result {
	return []Result{
		buildahVersion(ctx, in),
		buildahStorage(ctx, in),
		storagePermissions(in),
		fuseOverlayfs(ctx, in),
		checkpointFolder(in),
		kubeletAccess(ctx, in),
		registryAccess(in),
		podRestoreWebhook(in),
	}
}

// podRestoreWebhook checks that the member's pod-restore webhook is
// registered with a CA bundle: without it every pod of a restored
// multi-replica StatefulSet restores the first pod's checkpoint, and
// re-created pods restore again.
func podRestoreWebhook(in Inputs) Result {
	r := Result{Name: "pod-restore webhook"}
	fix := "kubectl apply -f artifacts/agent/pod-restore-rbac.yaml -f artifacts/agent/pod-restore.yaml, then " +
		"hack/apply-interpreter-config.sh --webhook pod-restore --service stateshift-system/stateshift-pod-restore --cert-dir DIR"
	switch {
	case apierrors.IsNotFound(in.PodRestoreErr):
		r.Detail, r.Fix = "MutatingWebhookConfiguration stateshift-pod-restore is not installed", fix
		return r
	case in.PodRestoreErr != nil:
		r.Detail, r.Fix = in.PodRestoreErr.Error(), "the agent's ClusterRole needs get on mutatingwebhookconfigurations/stateshift-pod-restore (artifacts/agent/rbac.yaml)"
		return r
	case in.PodRestore == nil || len(in.PodRestore.Webhooks) == 0:
		r.Detail, r.Fix = "MutatingWebhookConfiguration stateshift-pod-restore has no webhook", fix
		return r
	}
	w := in.PodRestore.Webhooks[0]
	if len(w.ClientConfig.CABundle) == 0 {
		r.Detail, r.Fix = "stateshift-pod-restore has no caBundle: the API server cannot trust the webhook, and restored pods are refused", fix
		return r
	}
	target := "url " + ptrString(w.ClientConfig.URL)
	if s := w.ClientConfig.Service; s != nil {
		target = fmt.Sprintf("Service %s/%s%s", s.Namespace, s.Name, ptrString(s.Path))
	}
	r.OK, r.Detail = true, "registered, "+target
	return r
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Print writes the results, one line each, and returns whether all passed.
func Print(w io.Writer, results []Result) bool {
	ok := true
	for _, r := range results {
		if r.OK {
			_, _ = fmt.Fprintf(w, "OK    %-20s %s\n", r.Name, r.Detail)
			continue
		}
		ok = false
		_, _ = fmt.Fprintf(w, "FAIL  %-20s %s\n      fix: %s\n", r.Name, r.Detail, r.Fix)
	}
	return ok
}

func run(ctx context.Context, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func buildahArgs(in Inputs, args ...string) []string {
	return append([]string{"--root", in.BuildahRoot, "--runroot", in.BuildahRunRoot, "--storage-driver", in.StorageDriver}, args...)
}

func buildahVersion(ctx context.Context, in Inputs) Result {
	r := Result{Name: "buildah"}
	out, err := run(ctx, in.Buildah, "--version")
	if err != nil {
		r.Detail = fmt.Sprintf("%s --version: %v %s", in.Buildah, err, out)
		r.Fix = "use the checkpoint-agent image (it ships buildah), or install buildah and pass --buildah=<path>; or offer only --builders=native"
		return r
	}
	r.OK, r.Detail = true, out
	return r
}

func buildahStorage(ctx context.Context, in Inputs) Result {
	r := Result{Name: "buildah storage"}
	out, err := run(ctx, in.Buildah, buildahArgs(in, "info", "--format", "{{.store.GraphDriverName}} {{.store.GraphRoot}} images={{.store.ImageStore.number}} containers={{.store.ContainerStore.number}}")...)
	if err != nil {
		r.Detail = fmt.Sprintf("buildah info: %v: %s", err, out)
		r.Fix = fmt.Sprintf("check --buildah-root %s and --buildah-storage-driver %s; on overlay errors try --buildah-storage-driver=vfs or mount the storage on ext4/xfs", in.BuildahRoot, in.StorageDriver)
		return r
	}
	r.OK, r.Detail = true, out
	return r
}

func storagePermissions(in Inputs) Result {
	r := Result{Name: "storage permissions"}
	for _, d := range []string{in.BuildahRoot, in.BuildahRunRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			r.Detail = fmt.Sprintf("%s: %v", d, err)
			r.Fix = "mount a writable volume there (artifacts/agent mounts /var/lib/stateshift from the host) owned by the agent's user"
			return r
		}
		probe, err := os.CreateTemp(d, ".doctor-")
		if err != nil {
			r.Detail = fmt.Sprintf("%s is not writable: %v", d, err)
			r.Fix = fmt.Sprintf("chown the host folder behind %s to the agent's user, or run the agent as that user", d)
			return r
		}
		_ = probe.Close()
		_ = os.Remove(probe.Name())
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s and %s writable", in.BuildahRoot, in.BuildahRunRoot)
	return r
}

func fuseOverlayfs(ctx context.Context, in Inputs) Result {
	r := Result{Name: "fuse-overlayfs"}
	if in.StorageDriver != "overlay" || os.Geteuid() == 0 {
		r.OK, r.Detail = true, "not needed (root or vfs: the kernel's overlay is used)"
		return r
	}
	out, err := run(ctx, "fuse-overlayfs", "--version")
	if err != nil {
		r.Detail = fmt.Sprintf("fuse-overlayfs --version: %v", err)
		r.Fix = "rootless overlay needs fuse-overlayfs and /dev/fuse in the pod; or use --buildah-storage-driver=vfs"
		return r
	}
	r.OK, r.Detail = true, strings.SplitN(out, "\n", 2)[0]
	return r
}

func checkpointFolder(in Inputs) Result {
	r := Result{Name: "checkpoint folder"}
	fi, err := os.Stat(in.CheckpointDir)
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "mount the kubelet's checkpoint folder (default /var/lib/kubelet/checkpoints) at --checkpoint-dir; the kubelet creates it on the first checkpoint"
		return r
	}
	if !fi.IsDir() {
		r.Detail = in.CheckpointDir + " is not a folder"
		r.Fix = "point --checkpoint-dir at the kubelet's checkpoint folder"
		return r
	}
	if _, err := os.ReadDir(in.CheckpointDir); err != nil {
		r.Detail = fmt.Sprintf("cannot read %s: %v", in.CheckpointDir, err)
		r.Fix = "the kubelet makes it 0700 root: run the agent as root or with CAP_DAC_READ_SEARCH"
		return r
	}
	mode := fi.Mode().Perm()
	r.OK, r.Detail = true, fmt.Sprintf("%s readable (mode %o)", in.CheckpointDir, mode)
	if mode&0o077 != 0 {
		r.OK = false
		r.Fix = fmt.Sprintf("chmod 0700 %s: archives hold process memory", filepath.Clean(in.CheckpointDir))
	}
	return r
}

// kubeletAccess asks the kubelet to checkpoint a pod that does not exist:
// the kubelet authenticates and authorizes before it routes, so 404 proves
// the token and nodes/checkpoint permission work, without checkpointing
// anything.
func kubeletAccess(ctx context.Context, in Inputs) Result {
	r := Result{Name: "kubelet"}
	if in.Kubelet == nil || in.KubeletHost == "" {
		r.Detail = "node address unknown"
		r.Fix = "the agent reads its Node's InternalIP; check --node-name and RBAC get on nodes"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := in.Kubelet.Checkpoint(ctx, kubelet.Target{Host: in.KubeletHost, Port: in.KubeletPort,
		Namespace: "stateshift-doctor", Pod: "stateshift-doctor-probe", Container: "probe"}, 0)
	var ke *kubelet.Error
	switch {
	case errors.As(err, &ke) && ke.Reason == kubelet.ReasonNotFound:
		r.OK, r.Detail = true, fmt.Sprintf("%s:%d reachable, TLS verified, token authorized for nodes/checkpoint", in.KubeletHost, in.KubeletPort)
	case errors.As(err, &ke):
		r.Detail = ke.Msg
		switch ke.Reason {
		case kubelet.ReasonUnauthorized:
			r.Fix = "the kubelet must run with --authentication-token-webhook and the agent's service-account token must be mounted"
		case kubelet.ReasonForbidden:
			r.Fix = "bind the agent's service account to a ClusterRole with create on nodes/checkpoint (artifacts/agent/rbac.yaml) and run the kubelet with --authorization-mode=Webhook"
		case kubelet.ReasonUnreachable:
			r.Fix = "the agent runs with hostNetwork; check --kubelet-ca matches the kubelet's serving CA and that port 10250 is open"
		default:
			r.Fix = "see the kubelet's log on this node"
		}
	case err == nil:
		r.Detail = "the kubelet checkpointed a pod that should not exist"
		r.Fix = "a namespace stateshift-doctor with a pod stateshift-doctor-probe exists; remove it"
	default:
		r.Detail, r.Fix = err.Error(), "see the kubelet's log on this node"
	}
	return r
}

func registryAccess(in Inputs) Result {
	r := Result{Name: "registry"}
	if in.Repository == "" {
		r.OK, r.Detail = true, "no repository given (--repository) : skipped"
		return r
	}
	var opts []name.Option
	if in.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(in.Repository+":stateshift-doctor", opts...)
	if err != nil {
		r.Detail, r.Fix = err.Error(), "give a repository like registry.example.com/team/checkpoints"
		return r
	}
	var kc authn.Keychain = authn.NewMultiKeychain()
	if in.Registry != nil {
		kc = in.Registry.Keychain()
	}
	// CheckPushPermission takes no context; the transport's own timeouts bound it.
	if err := remote.CheckPushPermission(ref, kc, remote.DefaultTransport); err != nil {
		msg := err.Error()
		if in.Registry != nil {
			msg = in.Registry.Redact(msg)
		}
		r.Detail = fmt.Sprintf("push to %s: %s", in.Repository, msg)
		switch {
		case strings.Contains(msg, "UNAUTHORIZED") || strings.Contains(msg, "401") || strings.Contains(msg, "DENIED"):
			r.Fix = "the credentials Secret (type kubernetes.io/dockerconfigjson, in the agent's namespace) lacks push rights to this repository"
		default:
			r.Fix = "check the registry address, the network path from the node, and --insecure-registries for plain-HTTP registries"
		}
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%s accepts pushes with the given credentials", in.Repository)
	return r
}
