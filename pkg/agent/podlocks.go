package agent

import "sync"

// podLocks serializes the Checkpoints of one pod: the kubelet names an
// archive by pod, container and second, so two checkpoints of one
// container in the same second would share (and delete) one file. An
// entry lives only while a Checkpoint of its pod runs or waits (issue 11
// defect 10: a sync.Map of every pod ever checkpointed grew for ever, by
// one entry per pod name, and a Deployment gets new pod names on every
// rollout and move).
type podLocks struct {
	mu    sync.Mutex
	locks map[string]*podLock
}

type podLock struct {
	sync.Mutex
	users int // holders and waiters
}

// lock locks key's mutex and returns its unlock, which drops the entry
// when no one else holds or waits for it.
func (l *podLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*podLock{}
	}
	pl := l.locks[key]
	if pl == nil {
		pl = &podLock{}
		l.locks[key] = pl
	}
	pl.users++
	l.mu.Unlock()
	pl.Lock()
	return func() {
		pl.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		if pl.users--; pl.users == 0 {
			delete(l.locks, key)
		}
	}
}

// len is the number of entries (for tests).
func (l *podLocks) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
