package nodesim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// container is one simulated container. Its fields are guarded by Node.mu.
type container struct {
	name  string
	image string
	// seed and memBytes define the container's memory (see MemoryReader);
	// a restore replaces them with the archive's.
	seed     uint64
	memBytes int64
	counter  uint64

	id         string // runtime id, 64 hex
	imageID    string // status imageID, repository@sha256:...
	imageHexID string // the runtime's image id, 64 hex (config.dump RootfsImageRef)
	created    time.Time
	started    time.Time
	running    bool
	starting   bool // a start attempt (maybe a pull) is in flight
	paused     bool // being dumped: the counter stands still
	attempts   int
	nextTry    time.Time
	reason     string // why it is waiting
	message    string

	restoredFrom    string
	restoredCounter uint64
	restoredSHA     string
	restoredAt      time.Time
	restorePull     time.Duration // the checkpoint image's pull (kubelet's Pulled event)
	restoreRuntime  time.Duration // the rest of the restore, after the pull

	// The memory hash is costly for big states: keep the last one.
	shaCounter uint64
	shaSeed    uint64
	sha        string
}

// podState is the runtime's view of one pod (its sandbox).
type podState struct {
	uid        types.UID
	namespace  string
	name       string
	ctx        context.Context
	cancel     context.CancelFunc
	startTime  time.Time
	containers []*container
}

func (p *podState) container(name string) *container {
	for _, c := range p.containers {
		if c.name == name {
			return c
		}
	}
	return nil
}

// containerSeed is stable per pod and container, so two containers never
// share memory content and a test can predict it.
func containerSeed(uid types.UID, name string) uint64 {
	sum := sha256.Sum256([]byte(string(uid) + "/" + name))
	return binary.LittleEndian.Uint64(sum[:8])
}

// ContainerState is what a simulated container holds, for tests and demos.
type ContainerState struct {
	Namespace   string `json:"namespace"`
	Pod         string `json:"pod"`
	PodUID      string `json:"podUID"`
	Container   string `json:"container"`
	ContainerID string `json:"containerID,omitempty"`
	Image       string `json:"image"`
	ImageID     string `json:"imageID,omitempty"`
	// Running is false while the container waits (see Reason, Message).
	Running bool   `json:"running"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Seed, Counter and MemoryBytes define the memory; MemorySHA256 is the
	// hash of the memory as a checkpoint would write it now.
	Seed         uint64 `json:"seed"`
	Counter      uint64 `json:"counter"`
	MemoryBytes  int64  `json:"memoryBytes"`
	MemorySHA256 string `json:"memorySHA256,omitempty"`
	// RestoredFrom is the checkpoint image the container was restored from
	// ("" for a cold start), RestoredCounter the counter it resumed at and
	// RestoredMemorySHA256 the hash of the memory read from the image.
	RestoredFrom         string `json:"restoredFrom,omitempty"`
	RestoredCounter      uint64 `json:"restoredCounter,omitempty"`
	RestoredMemorySHA256 string `json:"restoredMemorySHA256,omitempty"`
	// RestorePullSeconds is how long the restore spent pulling the
	// checkpoint image from the registry (manifest and layer), the duration
	// the Pulled event reports as a kubelet does; RestoreRuntimeSeconds is
	// the rest of the restore, the runtime's checks and the rebuilding of the
	// memory, until the container started. Both are absent for a cold start.
	RestorePullSeconds    float64 `json:"restorePullSeconds,omitempty"`
	RestoreRuntimeSeconds float64 `json:"restoreRuntimeSeconds,omitempty"`
	// Started is when the container started (for a restore: after the pull
	// and the restore).
	Started time.Time `json:"started,omitempty"`
}

// State returns the state of one container of a pod running on this node.
func (n *Node) State(namespace, pod, containerName string) (ContainerState, bool) {
	list := n.states(func(p *podState, c *container) bool {
		return p.namespace == namespace && p.name == pod && c.name == containerName
	})
	if len(list) == 0 {
		return ContainerState{}, false
	}
	return list[0], true
}

// States returns the state of every container on this node.
func (n *Node) States() []ContainerState {
	return n.states(func(*podState, *container) bool { return true })
}

func (n *Node) states(match func(*podState, *container) bool) []ContainerState {
	type pending struct {
		i             int
		c             *container
		seed, counter uint64
		size          int64
	}
	var out []ContainerState
	var hash []pending
	n.mu.Lock()
	for _, p := range n.pods {
		for _, c := range p.containers {
			if !match(p, c) {
				continue
			}
			s := ContainerState{
				Namespace: p.namespace, Pod: p.name, PodUID: string(p.uid), Container: c.name,
				ContainerID: c.id, Image: c.image, ImageID: c.imageID,
				Running: c.running, Reason: c.reason, Message: c.message,
				Seed: c.seed, Counter: c.counter, MemoryBytes: c.memBytes,
				RestoredFrom: c.restoredFrom, RestoredCounter: c.restoredCounter, RestoredMemorySHA256: c.restoredSHA,
				RestorePullSeconds: c.restorePull.Seconds(), RestoreRuntimeSeconds: c.restoreRuntime.Seconds(),
				Started: c.started,
			}
			if !c.running {
				s.ContainerID = ""
			}
			if c.running {
				if c.sha != "" && c.shaCounter == c.counter && c.shaSeed == c.seed {
					s.MemorySHA256 = c.sha
				} else {
					hash = append(hash, pending{len(out), c, c.seed, c.counter, c.memBytes})
				}
			}
			out = append(out, s)
		}
	}
	n.mu.Unlock()
	// Hash outside the lock: a GiB of memory takes a second or two.
	for _, h := range hash {
		sum := MemorySHA256(h.seed, h.counter, h.size)
		out[h.i].MemorySHA256 = sum
		n.mu.Lock()
		h.c.sha, h.c.shaCounter, h.c.shaSeed = sum, h.counter, h.seed
		n.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Container < b.Container
	})
	return out
}

// tick grows the counter of every running container.
func (n *Node) tick(ctx context.Context) {
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		for _, p := range n.pods {
			for _, c := range p.containers {
				if c.running && !c.paused {
					c.counter++
				}
			}
		}
		n.mu.Unlock()
	}
}
