package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/stateshift/stateshift/pkg/agent/archive"
	imagebuilder "github.com/stateshift/stateshift/pkg/agent/builder"
	"github.com/stateshift/stateshift/pkg/agent/kubelet"
	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// Reconciler executes Checkpoints whose pod runs on NodeName.
type Reconciler struct {
	// Client reads Checkpoints and the pods of this node from the cache and
	// writes status.
	Client client.Client
	// Reader reads uncached, with get only: this node's Node object and
	// registry Secrets in Namespace (no cluster-wide list/watch on either).
	Reader client.Reader
	// Recorder writes Events on the Checkpoint and its pod.
	Recorder events.EventRecorder

	NodeName string
	// Namespace is the agent's own; credentials Secrets are read only there.
	Namespace string
	Kubelet   *kubelet.Client
	// CheckpointDir is the kubelet's checkpoint folder as mounted in the agent;
	// archive paths outside it are refused.
	CheckpointDir string
	// WorkDir holds short-lived private files (auth files, config.dump).
	WorkDir string
	// Journal records, per Checkpoint UID, the archives an attempt may have
	// left, so that a restarted agent deletes them (Sweep). nil means
	// WorkDir/journal.
	Journal  *archive.Journal
	Builders map[v1alpha1.Builder]imagebuilder.ImageBuilder
	// InsecureRegistries are registry hosts spoken to over plain HTTP.
	InsecureRegistries []string
	// RequireSecretNamespaces refuses registry Secrets that do not list the
	// Checkpoint's namespace in stateshift.io/allowed-namespaces; without
	// it a Secret without the annotation serves every namespace.
	RequireSecretNamespaces bool
	// MaxAttempts bounds retries of one Checkpoint.
	MaxAttempts int32
	// BackoffBase is the first retry delay; it doubles up to BackoffMax.
	BackoffBase, BackoffMax time.Duration
	// PodWait is how long a Checkpoint may wait for its pod to exist.
	PodWait time.Duration
	// MaxConcurrent bounds checkpoints executed at once on this node.
	MaxConcurrent int
	// Deadlines of the stages that talk to the network; 0 means the
	// Default* value. KubeletTimeout applies when a Checkpoint sets no
	// timeoutSeconds.
	KubeletTimeout, PushTimeout, VerifyTimeout time.Duration

	now func() time.Time

	// podLocks serializes the Checkpoints of one pod (see podlocks.go).
	podLocks podLocks
	// kubelet is this node's kubelet address, read from the Node at most
	// once a nodeAddressTTL (see kubeletAddress).
	kubelet kubeletEndpoint
}

// nodeAddressTTL is how long the agent uses the kubelet address it read
// from its Node: at a checkpoint each, a read per checkpoint was one of
// the agents' largest costs to their API server at 1,000 workloads, and a
// node's address changes only when the node is registered again.
const nodeAddressTTL = time.Minute

type kubeletEndpoint struct {
	mu   sync.Mutex
	host string
	port int
	read time.Time
}

func (k *kubeletEndpoint) forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.host = ""
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.now == nil {
		r.now = time.Now
	}
	if r.MaxConcurrent < 1 {
		r.MaxConcurrent = 1
	}
	if r.Journal == nil {
		r.Journal = &archive.Journal{Dir: filepath.Join(r.WorkDir, "journal")}
	}
	r.KubeletTimeout = orDefault(r.KubeletTimeout, DefaultKubeletTimeout)
	r.PushTimeout = orDefault(r.PushTimeout, DefaultPushTimeout)
	r.VerifyTimeout = orDefault(r.VerifyTimeout, DefaultVerifyTimeout)
	// Checkpoints are found by their pod's name, so that a pod arriving on
	// this node (after its Checkpoint) starts the work at once.
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Checkpoint{}, podNameField,
		func(o client.Object) []string { return []string{o.(*v1alpha1.Checkpoint).Spec.PodName} }); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("checkpoint-agent").
		For(&v1alpha1.Checkpoint{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}, r.notForOtherNode())).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.checkpointsOfPod)).
		// The binary runs one agent; tests run several in one process, which
		// controller-runtime's global name check would refuse.
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrent, SkipNameValidation: ptr(true)}).
		Complete(r)
}

const podNameField = "spec.podName"

// forOtherNode says whether the controller asked another node's agent for
// this Checkpoint (label stateshift.io/node, the pod's node when it was
// created). A person's Checkpoint has no such label: every agent looks.
func forOtherNode(cp client.Object, node string) bool {
	n := cp.GetLabels()[v1alpha1.LabelNode]
	return n != "" && n != node
}

// notForOtherNode drops the watch events of Checkpoints meant for another
// node: with n nodes each Checkpoint otherwise costs n reconciles. The
// pod's own events still reach the agent of a node the pod moved to.
func (r *Reconciler) notForOtherNode() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool { return !forOtherNode(o, r.NodeName) })
}

// checkpointsOfPod maps a pod of this node to its unfinished Checkpoints.
func (r *Reconciler) checkpointsOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.CheckpointList{}
	if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{podNameField: o.GetName()}); err != nil {
		klog.FromContext(ctx).Error(err, "list Checkpoints of pod", "pod", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if !list.Items[i].IsFinished() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// Reconcile runs one attempt of a Checkpoint of this node to its end (or
// schedules the next attempt). controller-runtime never reconciles the same
// object twice at once, so a Checkpoint found in Checkpointing or Pushing
// with this node's name was left by an agent that stopped mid-way.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := klog.FromContext(ctx).WithValues("checkpoint", req.NamespacedName)
	cp := &v1alpha1.Checkpoint{}
	if err := r.Client.Get(ctx, req.NamespacedName, cp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cp.IsFinished() {
		return ctrl.Result{}, r.reportJournaledImages(ctx, cp)
	}
	if cp.Status.NodeName != "" && cp.Status.NodeName != r.NodeName {
		return ctrl.Result{}, nil
	}

	pod := &corev1.Pod{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: cp.Namespace, Name: cp.Spec.PodName}, pod)
	if apierrors.IsNotFound(err) {
		// The cache only holds this node's pods: look further before judging.
		return r.notOnThisNode(ctx, cp)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if pod.Spec.NodeName != r.NodeName {
		return r.notOnThisNode(ctx, cp)
	}
	if wait := r.backoffLeft(cp); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	log.V(2).Info("executing", "pod", pod.Name, "attempt", cp.Status.Attempts+1)
	defer r.podLocks.lock(req.Namespace + "/" + pod.Name)()
	// Another Checkpoint of this pod may have run while we waited: re-read.
	if err := r.Client.Get(ctx, req.NamespacedName, cp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cp.IsFinished() || (cp.Status.NodeName != "" && cp.Status.NodeName != r.NodeName) {
		return ctrl.Result{}, nil
	}
	return r.attempt(ctx, cp, pod)
}

// notOnThisNode handles a Checkpoint this agent does not execute. Only a
// Checkpoint nobody has claimed yet gets a status from here, so that the
// user sees why it waits; every agent writes the same words, and the
// optimistic update never overwrites the owning agent's claim.
func (r *Reconciler) notOnThisNode(ctx context.Context, cp *v1alpha1.Checkpoint) (ctrl.Result, error) {
	if cp.Status.NodeName == r.NodeName && cp.Status.Phase != "" && cp.Status.Phase != v1alpha1.CheckpointPending {
		return r.claimedPodGone(ctx, cp)
	}
	if cp.Status.Phase != "" && cp.Status.Phase != v1alpha1.CheckpointPending {
		return ctrl.Result{}, nil
	}
	if cp.Status.NodeName != "" || forOtherNode(cp, r.NodeName) {
		// Another node's agent says why it waits, without every agent of
		// the cluster reading the pod from the API server.
		return ctrl.Result{}, nil
	}
	pod := &corev1.Pod{}
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: cp.Namespace, Name: cp.Spec.PodName}, pod)
	switch {
	case apierrors.IsNotFound(err):
		if r.now().Sub(cp.CreationTimestamp.Time) > r.PodWait {
			return ctrl.Result{}, r.finish(ctx, cp, nil, permanent(reasonPodNotFound,
				fmt.Errorf("pod %s/%s does not exist (waited %s)", cp.Namespace, cp.Spec.PodName, r.PodWait)))
		}
		msg := fmt.Sprintf("waiting for pod %s/%s to exist", cp.Namespace, cp.Spec.PodName)
		return ctrl.Result{RequeueAfter: 10 * time.Second}, r.setPending(ctx, cp, reasonPodNotFound, msg)
	case err != nil:
		return ctrl.Result{}, err
	case pod.Spec.NodeName == r.NodeName:
		// Ours, but not in the cache yet: the pod's watch event brings it back.
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	case pod.Spec.NodeName == "":
		msg := fmt.Sprintf("waiting for pod %s/%s to be scheduled", cp.Namespace, cp.Spec.PodName)
		return ctrl.Result{RequeueAfter: 10 * time.Second}, r.setPending(ctx, cp, "PodNotScheduled", msg)
	default:
		msg := fmt.Sprintf("pod %s/%s runs on node %s: waiting for that node's checkpoint agent", cp.Namespace, cp.Spec.PodName, pod.Spec.NodeName)
		return ctrl.Result{}, r.setPending(ctx, cp, "PodOnOtherNode", msg)
	}
}

func (r *Reconciler) setPending(ctx context.Context, cp *v1alpha1.Checkpoint, reason, msg string) error {
	if cp.Status.Phase == v1alpha1.CheckpointPending && cp.Status.Message == msg {
		return nil
	}
	cp.Status.Phase = v1alpha1.CheckpointPending
	cp.Status.Message = msg
	cp.Status.ObservedGeneration = cp.Generation
	r.condition(cp, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	return client.IgnoreNotFound(ignoreConflict(r.Client.Status().Update(ctx, cp)))
}

func ignoreConflict(err error) error {
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// backoffLeft is how long to wait before the next attempt.
func (r *Reconciler) backoffLeft(cp *v1alpha1.Checkpoint) time.Duration {
	if cp.Status.Attempts == 0 || cp.Status.LastAttemptTime == nil || cp.Status.Phase != v1alpha1.CheckpointPending {
		return 0
	}
	d := r.BackoffBase << (cp.Status.Attempts - 1)
	if d > r.BackoffMax || d <= 0 {
		d = r.BackoffMax
	}
	return time.Until(cp.Status.LastAttemptTime.Add(d))
}

// produced is one container's archive on its way to an image.
type produced struct {
	container string
	path      string
	size      int64
	source    checkpointimage.Source
}

func (r *Reconciler) attempt(ctx context.Context, cp *v1alpha1.Checkpoint, pod *corev1.Pod) (ctrl.Result, error) {
	now := metav1.NewTime(r.now())
	resumed := cp.Status.Phase == v1alpha1.CheckpointCheckpointing || cp.Status.Phase == v1alpha1.CheckpointPushing
	// Images an earlier attempt pushed but never reported (the agent was
	// killed, or the status write failed) are recorded with the claim.
	r.recoverJournaledImages(cp)
	cp.Status.Phase = v1alpha1.CheckpointCheckpointing
	cp.Status.NodeName = r.NodeName
	cp.Status.Attempts++
	cp.Status.LastAttemptTime = &now
	cp.Status.ObservedGeneration = cp.Generation
	if cp.Status.StartTime == nil {
		cp.Status.StartTime = &now
	}
	cp.Status.Message = fmt.Sprintf("attempt %d: checkpointing", cp.Status.Attempts)
	if resumed {
		cp.Status.Message = fmt.Sprintf("attempt %d: checkpointing again, the previous attempt was interrupted", cp.Status.Attempts)
	}
	// Claiming with an optimistic update: a conflict means someone else
	// (another node's agent saying why it waits) changed it first. Status
	// changes do not wake this controller, so look again soon.
	if err := r.Client.Status().Update(ctx, cp); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	var archives []produced
	// Archives hold process memory: never leave one behind. They go before
	// the final status is written, so that whoever sees the result also sees
	// the node clean; the deferred call covers a panic in between, and the
	// journal a kill.
	entry := &archive.Entry{UID: string(cp.UID), Namespace: pod.Namespace, Pod: pod.Name, Checkpoint: cp.Name}
	defer func() { r.deleteArchives(ctx, cp, entry) }()

	results, err := r.run(ctx, cp, pod, &archives, entry)
	terminal := err == nil || asFailure(err).permanent || cp.Status.Attempts >= r.MaxAttempts
	mayForget := r.deleteArchives(ctx, cp, entry)
	var res ctrl.Result
	if err != nil {
		// Written with the failure: whatever this attempt pushed.
		addStrayImages(cp, entry.Images, asFailure(err).reason)
		res, err = r.failed(ctx, cp, pod, err)
	} else {
		cp.Status.Containers = results
		// Only images of earlier attempts no status named yet.
		addStrayImages(cp, entry.Images, reasonNotResult)
		err = r.finish(ctx, cp, pod, nil)
	}
	// The journal entry goes once the status names every pushed image,
	// and is kept until the last attempt: a kubelet that answered too
	// late may still write an archive after an attempt gave up.
	if err == nil && terminal && mayForget {
		r.forgetJournal(ctx, entry.UID)
	}
	return res, err
}

// deleteArchives removes every archive the attempts of cp may have made
// (those the kubelet answered, and any it wrote for these containers since
// the first attempt); removing one twice is harmless. It says whether the
// journal entry may go: an attempt that never reached the kubelet did not
// read the entry, whose archives (of earlier attempts) stay for the sweep.
func (r *Reconciler) deleteArchives(ctx context.Context, cp *v1alpha1.Checkpoint, e *archive.Entry) bool {
	if e.Started.IsZero() {
		return false
	}
	if _, err := archive.Delete(r.CheckpointDir, *e); err != nil {
		klog.FromContext(ctx).Error(err, "delete checkpoint archives")
		r.Recorder.Eventf(cp, nil, corev1.EventTypeWarning, "ArchiveNotDeleted", "Delete", "could not delete archives: %v", err)
		return false
	}
	return true
}

func (r *Reconciler) forgetJournal(ctx context.Context, uid string) {
	if err := r.Journal.Forget(uid); err != nil {
		klog.FromContext(ctx).Error(err, "forget archive journal entry")
	}
}

// run does the work of one attempt: checkpoint every container, then build,
// push and verify every image.
func (r *Reconciler) run(ctx context.Context, cp *v1alpha1.Checkpoint, pod *corev1.Pod, archives *[]produced, entry *archive.Entry) ([]v1alpha1.ContainerCheckpoint, error) {
	containers, err := selectContainers(cp, pod)
	if err != nil {
		return nil, err
	}
	bld, ok := r.Builders[builderOf(cp)]
	if !ok {
		return nil, permanent(reasonBuilder, fmt.Errorf("builder %q is not enabled on this agent", builderOf(cp)))
	}
	creds, err := r.credentials(ctx, cp)
	if err != nil {
		return nil, err
	}
	authFile, keychain, cleanup, err := r.authFor(creds)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	host, port, err := r.kubeletAddress(ctx)
	if err != nil {
		return nil, err
	}

	// Stage 1: the kubelet checkpoints each container. The journal learns
	// of the attempt before the kubelet is asked, and of every path it
	// answers, so that a kill at any point leaves nothing behind.
	start := r.now()
	entry.Containers, entry.Started = containers, start
	if *entry, err = r.Journal.Begin(*entry); err != nil {
		return nil, fail(reasonJournal, err)
	}
	var total int64
	for _, c := range containers {
		a, err := r.checkpointOne(ctx, pod, host, port, c, r.kubeletTimeout(cp), entry)
		if err != nil {
			r.kubelet.forget() // the next attempt reads the Node again
			return nil, err
		}
		*archives = append(*archives, a)
		total += a.size
	}
	checkpointTook := r.now().Sub(start)
	stageDuration.WithLabelValues(stageCheckpoint, bld.Name()).Observe(checkpointTook.Seconds())
	cp.Status.Timings.Checkpoint = timing(checkpointTook)
	cp.Status.ArchiveBytes, cp.Status.ArchiveSize = total, v1alpha1.FormatSize(total)
	cp.Status.Phase = v1alpha1.CheckpointPushing
	cp.Status.Message = fmt.Sprintf("attempt %d: %d archive(s), %d bytes; building and pushing with %s", cp.Status.Attempts, len(*archives), total, bld.Name())
	r.condition(cp, v1alpha1.ConditionCheckpointed, metav1.ConditionTrue, "Checkpointed", cp.Status.Message)
	if err := r.Client.Status().Update(ctx, cp); err != nil {
		return nil, fmt.Errorf("record checkpoint progress: %w", err)
	}
	// No Event for this stage: the Checkpointed condition has it, and the
	// result's Event follows within seconds (an Event per stage and round
	// of every protected workload is most of a member's Event writes).

	// Stage 2: build, push, verify by digest.
	job := pushJob{cp: cp, pod: pod, bld: bld, authFile: authFile, keychain: keychain, entry: entry}
	return r.pushAll(ctx, job, *archives)
}

// pushAll builds, pushes and verifies every archive's image.
func (r *Reconciler) pushAll(ctx context.Context, job pushJob, archives []produced) ([]v1alpha1.ContainerCheckpoint, error) {
	start := r.now()
	if r.insecure(job.cp.Spec.Repository) {
		job.nameOpts = append(job.nameOpts, name.Insecure)
	}
	if job.cp.Status.Attempts > 1 {
		// An earlier attempt may have been stopped after its manifest was
		// stored and before the push returned the digest.
		for _, a := range archives {
			r.recordTaggedImage(ctx, job, a.container, 0)
		}
	}
	var out []v1alpha1.ContainerCheckpoint
	for _, a := range archives {
		c, err := r.pushOne(ctx, job, a)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	job.cp.Status.Timings.Image = timing(r.now().Sub(start))
	return out, nil
}

// checkpointOne asks the kubelet for one container's archive, records
// every path it answers in the journal and checks the archive: inside the
// checkpoint folder, a container checkpoint of this pod's container.
func (r *Reconciler) checkpointOne(ctx context.Context, pod *corev1.Pod, host string, port int, c string, timeout time.Duration, entry *archive.Entry) (produced, error) {
	paths, err := r.Kubelet.Checkpoint(ctx, kubelet.Target{Host: host, Port: port, Namespace: pod.Namespace, Pod: pod.Name, Container: c}, timeout)
	if err != nil {
		return produced{}, err
	}
	// Every path, not only the first: CRI returns one archive per
	// container, but whatever else the kubelet wrote is process memory
	// too; it is deleted with the others, never pushed.
	entry.Paths = append(entry.Paths, paths...)
	if err := r.Journal.Record(*entry); err != nil {
		return produced{}, fail(reasonJournal, err)
	}
	p, err := archive.Resolve(r.CheckpointDir, paths[0])
	if err != nil {
		return produced{}, permanent(reasonArchiveRejected, fmt.Errorf("container %s: %w", c, err))
	}
	fi, err := os.Stat(p)
	if err != nil {
		return produced{}, fail(reasonArchiveInvalid, fmt.Errorf("container %s: archive vanished: %w", c, err))
	}
	cfg, err := archive.ReadConfig(p, r.WorkDir)
	if err != nil {
		return produced{}, fail(reasonArchiveInvalid, fmt.Errorf("container %s: %w", c, err))
	}
	if !archive.HoldsContainer(cfg.Name, pod.Namespace, pod.Name, c) {
		return produced{}, permanent(reasonArchiveInvalid, fmt.Errorf("container %s of %s/%s: the kubelet's archive holds container %q", c, pod.Namespace, pod.Name, cfg.Name))
	}
	return produced{container: c, path: p, size: fi.Size(), source: checkpointimage.Source{Container: c, Pod: pod.Name, Namespace: pod.Namespace,
		RootfsImage: cfg.RootfsImage, RootfsImageRef: cfg.RootfsImageRef}}, nil
}

// pushJob is what every push of one attempt shares.
type pushJob struct {
	cp       *v1alpha1.Checkpoint
	pod      *corev1.Pod
	bld      imagebuilder.ImageBuilder
	authFile string
	keychain authn.Keychain
	nameOpts []name.Option
	// entry is the attempt's journal entry: each pushed image is recorded
	// there as soon as its digest is known.
	entry *archive.Entry
}

// pushOne builds and pushes one archive's image and reads it back by
// digest, each step within its deadline. The pushed image is journaled
// before it is verified: from then on it is a memory dump in the registry
// that the Checkpoint must name, as its result or as a stray image.
func (r *Reconciler) pushOne(ctx context.Context, job pushJob, a produced) (v1alpha1.ContainerCheckpoint, error) {
	cp, bld, keychain, nameOpts := job.cp, job.bld, job.keychain, job.nameOpts
	t0 := r.now()
	res, err := r.build(ctx, job, a)
	if err != nil {
		return v1alpha1.ContainerCheckpoint{}, err
	}
	if err := r.recordPushed(cp, job.entry, a.container, res.Digest); err != nil {
		// A digest the agent refuses to record still pushed a manifest.
		r.recordTaggedImage(ctx, job, a.container, cp.Status.Attempts)
		return v1alpha1.ContainerCheckpoint{}, err
	}
	stageDuration.WithLabelValues(stageImage, bld.Name()).Observe(r.now().Sub(t0).Seconds())
	t0 = r.now()
	verifyCtx, cancel := context.WithTimeout(ctx, r.VerifyTimeout)
	var v *checkpointimage.Verified
	if res.Transport != nil {
		v, err = checkpointimage.VerifyOver(verifyCtx, res.Transport, cp.Spec.Repository, res.Digest, a.container, nameOpts...)
	} else {
		v, err = checkpointimage.Verify(verifyCtx, cp.Spec.Repository, res.Digest, a.container, keychain, nameOpts...)
	}
	timedOut := verifyCtx.Err() == context.DeadlineExceeded
	cancel()
	if err != nil && timedOut {
		return v1alpha1.ContainerCheckpoint{}, fail(reasonVerifyTimeout, fmt.Errorf("container %s: reading %s back did not finish within %s (--verify-timeout): %w",
			a.container, res.Digest, r.VerifyTimeout, err))
	}
	if err != nil {
		return v1alpha1.ContainerCheckpoint{}, fail(reasonVerify, fmt.Errorf("container %s: pushed image failed verification: %w", a.container, err))
	}
	stageDuration.WithLabelValues(stageVerify, bld.Name()).Observe(r.now().Sub(t0).Seconds())
	archiveBytes.WithLabelValues(bld.Name()).Add(float64(a.size))
	return v1alpha1.ContainerCheckpoint{Name: a.container, Image: v.Reference, ArchiveBytes: a.size,
		RootfsImage: a.source.RootfsImage, RootfsImageRef: a.source.RootfsImageRef}, nil
}

// build builds and pushes one archive's image within the push deadline.
// A push that failed may still have stored its manifest (the answer was
// lost, or the deadline hit after the upload): the tag says, and such an
// image is journaled too.
func (r *Reconciler) build(ctx context.Context, job pushJob, a produced) (imagebuilder.Result, error) {
	cp, bld := job.cp, job.bld
	pushCtx, cancel := context.WithTimeout(ctx, r.PushTimeout)
	res, err := bld.Build(pushCtx, imagebuilder.Request{
		ArchivePath: a.path,
		Repository:  cp.Spec.Repository,
		Tag:         imageTag(job.pod.Name, a.container, string(cp.UID)),
		Annotations: checkpointimage.Annotations(a.source),
		AuthFile:    job.authFile,
		Insecure:    r.insecure(cp.Spec.Repository),
		Compression: cp.Spec.Compression,
	})
	timedOut := pushCtx.Err() == context.DeadlineExceeded
	cancel()
	if err != nil {
		r.recordTaggedImage(ctx, job, a.container, cp.Status.Attempts)
	}
	if err != nil && timedOut {
		return res, fail(reasonPushTimeout, fmt.Errorf("container %s: %s: building and pushing to %s did not finish within %s (--push-timeout): %w",
			a.container, bld.Name(), cp.Spec.Repository, r.PushTimeout, err))
	}
	if err != nil {
		return res, fail(reasonPush, fmt.Errorf("container %s: %s: %w", a.container, bld.Name(), err))
	}
	return res, nil
}

func builderOf(cp *v1alpha1.Checkpoint) v1alpha1.Builder {
	if cp.Spec.Builder == "" {
		return v1alpha1.BuilderBuildah
	}
	return cp.Spec.Builder
}

func selectContainers(cp *v1alpha1.Checkpoint, pod *corev1.Pod) ([]string, error) {
	have := map[string]bool{}
	var all []string
	for _, c := range pod.Spec.Containers {
		have[c.Name] = true
		all = append(all, c.Name)
	}
	if len(cp.Spec.Containers) == 0 {
		return all, nil
	}
	for _, c := range cp.Spec.Containers {
		if !have[c] {
			return nil, permanent(reasonContainer, fmt.Errorf("pod %s has no container %q (it has %s)", pod.Name, c, strings.Join(all, ", ")))
		}
	}
	return cp.Spec.Containers, nil
}

// credentials reads the registry Secret named by the Checkpoint from the
// agent's own namespace.
func (r *Reconciler) credentials(ctx context.Context, cp *v1alpha1.Checkpoint) (*registryauth.Config, error) {
	if cp.Spec.CredentialsSecretRef == nil {
		return nil, nil
	}
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: r.Namespace, Name: cp.Spec.CredentialsSecretRef.Name}
	if err := r.Reader.Get(ctx, key, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fail(reasonCredentials, fmt.Errorf("registry credentials Secret %s not found (credentials Secrets live in the agent's namespace %s)", key, r.Namespace))
		}
		if apierrors.IsForbidden(err) {
			return nil, fail(reasonCredentials, fmt.Errorf("the agent may not read Secret %s: only registry Secrets named in the resourceNames of Role %s/stateshift-checkpoint-agent-credentials are readable", key, r.Namespace))
		}
		return nil, fail(reasonCredentials, fmt.Errorf("read registry credentials Secret %s: %w", key, err))
	}
	if err := registryauth.AllowsNamespace(s, cp.Namespace, r.RequireSecretNamespaces); err != nil {
		return nil, permanent(reasonCredentialsNotAllowed, err)
	}
	cfg, err := registryauth.Parse(s)
	if err != nil {
		return nil, fail(reasonCredentials, fmt.Errorf("registry credentials Secret %s: %w", key, err))
	}
	return cfg, nil
}

// authFor writes the auth file the builder reads and the keychain used to
// verify. Without a Secret the file is explicit and empty: every builder is
// anonymous then, none falls back to credentials found on the node.
func (r *Reconciler) authFor(cfg *registryauth.Config) (string, authn.Keychain, func(), error) {
	path, cleanup, err := cfg.WriteAuthFile(r.WorkDir)
	if err != nil {
		return "", nil, nil, fail(reasonCredentials, fmt.Errorf("write registry auth file: %w", err))
	}
	return path, cfg.Keychain(), cleanup, nil
}

// kubeletTimeout is what the kubelet is given for one container: the
// Checkpoint's timeoutSeconds, or the agent's default, so that the HTTP
// call always has a deadline.
func (r *Reconciler) kubeletTimeout(cp *v1alpha1.Checkpoint) time.Duration {
	if cp.Spec.TimeoutSeconds > 0 {
		return time.Duration(cp.Spec.TimeoutSeconds) * time.Second
	}
	return r.KubeletTimeout
}

// Default stage deadlines: a kubelet's default runtime request timeout is
// 2 minutes; a push of a few GiB takes minutes on a slow link.
const (
	DefaultKubeletTimeout = 4 * time.Minute
	DefaultPushTimeout    = 30 * time.Minute
	DefaultVerifyTimeout  = 2 * time.Minute
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// kubeletAddress is this node's InternalIP and kubelet port, as the kubelet
// itself published them on the Node.
func (r *Reconciler) kubeletAddress(ctx context.Context) (string, int, error) {
	k := &r.kubelet
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.host != "" && r.now().Sub(k.read) < nodeAddressTTL {
		return k.host, k.port, nil
	}
	node := &corev1.Node{}
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: r.NodeName}, node); err != nil {
		return "", 0, fail(reasonNode, fmt.Errorf("read node %s: %w", r.NodeName, err))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeHostName, corev1.NodeExternalIP} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				k.host, k.port, k.read = a.Address, port, r.now()
				return a.Address, port, nil
			}
		}
	}
	return "", 0, fail(reasonNode, fmt.Errorf("node %s has no InternalIP or Hostname address", r.NodeName))
}

func (r *Reconciler) insecure(repository string) bool {
	host := repository
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	for _, h := range r.InsecureRegistries {
		if h == host {
			return true
		}
	}
	return false
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// imageTag names a checkpoint image <pod>-<container>-<uid prefix>, within
// the registry's 128-character tag limit. Images are recorded by digest;
// the tag keeps them from being garbage-collected as untagged and tells a
// person browsing the registry what they are.
func imageTag(pod, container, uid string) string {
	if len(uid) > 8 {
		uid = uid[:8]
	}
	t := tagUnsafe.ReplaceAllString(pod+"-"+container, "-")
	if len(t) > 118 {
		t = t[:118]
	}
	return t + "-" + uid
}

// failed records a failed attempt: retry later, or give up when the error
// cannot go away by itself or attempts are used up.
func (r *Reconciler) failed(ctx context.Context, cp *v1alpha1.Checkpoint, pod *corev1.Pod, err error) (ctrl.Result, error) {
	f := asFailure(err)
	observeFailure(f.reason)
	if f.permanent || cp.Status.Attempts >= r.MaxAttempts {
		if !f.permanent {
			f = &failure{reason: f.reason, permanent: true, err: fmt.Errorf("gave up after %d attempts: %w", cp.Status.Attempts, f.err)}
		}
		return ctrl.Result{}, r.finish(ctx, cp, pod, f)
	}
	wait := r.BackoffBase << (cp.Status.Attempts - 1)
	if wait > r.BackoffMax || wait <= 0 {
		wait = r.BackoffMax
	}
	msg := fmt.Sprintf("attempt %d of %d failed: %v; retrying in %s", cp.Status.Attempts, r.MaxAttempts, f.err, wait)
	cp.Status.Phase = v1alpha1.CheckpointPending
	cp.Status.Message = msg
	r.condition(cp, v1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, msg)
	r.Recorder.Eventf(cp, pod, corev1.EventTypeWarning, f.reason, "Retry", "%s", msg)
	if err := r.Client.Status().Update(ctx, cp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

// timing is a stage's duration as the status shows it (kubectl's Took
// column): milliseconds, as a Migration's durations, not nanoseconds.
func timing(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d.Round(time.Millisecond)}
}

// finish writes a terminal phase: Succeeded when f is nil.
func (r *Reconciler) finish(ctx context.Context, cp *v1alpha1.Checkpoint, pod *corev1.Pod, f *failure) error {
	now := metav1.NewTime(r.now())
	cp.Status.CompletionTime = &now
	cp.Status.ObservedGeneration = cp.Generation
	if cp.Status.StartTime != nil {
		cp.Status.Timings.Total = timing(now.Sub(cp.Status.StartTime.Time))
	}
	// An Event regarding each of the two, so both `kubectl describe` show it.
	emit := func(typ, reason, note string) {
		if pod == nil {
			r.Recorder.Eventf(cp, nil, typ, reason, "Checkpoint", "%s", note)
			return
		}
		r.Recorder.Eventf(cp, pod, typ, reason, "Checkpoint", "%s", note)
		r.Recorder.Eventf(pod, cp, typ, reason, "Checkpoint", "checkpoint %s: %s", cp.Name, note)
	}
	if f != nil {
		cp.Status.Phase = v1alpha1.CheckpointFailed
		cp.Status.Message = f.err.Error()
		r.condition(cp, v1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, cp.Status.Message)
		emit(corev1.EventTypeWarning, "CheckpointFailed", cp.Status.Message)
	} else {
		cp.Status.Phase = v1alpha1.CheckpointSucceeded
		var refs []string
		for _, c := range cp.Status.Containers {
			refs = append(refs, c.Image)
		}
		cp.Status.Message = fmt.Sprintf("%d image(s) pushed and verified: %s", len(refs), strings.Join(refs, ", "))
		r.condition(cp, v1alpha1.ConditionPushed, metav1.ConditionTrue, "Verified", "every image was read back by digest")
		r.condition(cp, v1alpha1.ConditionReady, metav1.ConditionTrue, "Succeeded", cp.Status.Message)
		emit(corev1.EventTypeNormal, "CheckpointSucceeded", cp.Status.Message)
	}
	checkpoints.WithLabelValues(string(cp.Status.Phase)).Inc()
	return client.IgnoreNotFound(r.Client.Status().Update(ctx, cp))
}

// claimedPodGone ends a Checkpoint this node claimed and left mid-way (the
// agent stopped during it) whose pod has since gone or moved to another
// node: no attempt here can finish it, and without an end it stayed
// Checkpointing or Pushing for good, holding up a Migration until its
// deadline. The API server, not the cache, decides that the pod is gone.
// Images the interrupted attempt pushed are named as stray images (from
// the journal), so that the controller deletes them.
func (r *Reconciler) claimedPodGone(ctx context.Context, cp *v1alpha1.Checkpoint) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: cp.Namespace, Name: cp.Spec.PodName}, pod)
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return ctrl.Result{}, err
	case err == nil && pod.Spec.NodeName == r.NodeName:
		// Still ours, not in the cache yet: its watch event brings it back.
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	where := "no longer exists"
	if err == nil {
		where = fmt.Sprintf("now runs on node %q", pod.Spec.NodeName)
	}
	r.recoverJournaledImages(cp)
	return ctrl.Result{}, r.finish(ctx, cp, nil, permanent(reasonPodNotFound, fmt.Errorf(
		"pod %s/%s %s: this node's agent stopped during attempt %d and cannot finish it", cp.Namespace, cp.Spec.PodName, where, cp.Status.Attempts)))
}

func (r *Reconciler) condition(cp *v1alpha1.Checkpoint, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	meta.SetStatusCondition(&cp.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
		Message: msg, ObservedGeneration: cp.Generation})
}

func ptr[T any](v T) *T { return &v }
