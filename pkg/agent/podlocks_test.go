package agent

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPodLocksSerializeAndPrune: one pod's checkpoints run one at a time,
// other pods' alongside, and no entry is left once they are done (before,
// every pod ever checkpointed kept one for the agent's lifetime).
func TestPodLocksSerializeAndPrune(t *testing.T) {
	var l podLocks
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "ns/db-0"
			if i%2 == 1 {
				key = "ns/web-" + string(rune('a'+i))
			}
			unlock := l.lock(key)
			defer unlock()
			if key == "ns/db-0" {
				if n := inside.Add(1); n > most.Load() {
					most.Store(n)
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d checkpoints of one pod ran at once", most.Load())
	}
	if n := l.len(); n != 0 {
		t.Fatalf("%d lock entries left after every checkpoint finished", n)
	}
	unlock := l.lock("ns/db-0")
	if l.len() != 1 {
		t.Fatalf("a held lock has %d entries", l.len())
	}
	unlock()
	if l.len() != 0 {
		t.Fatal("the entry outlived its only holder")
	}
}
