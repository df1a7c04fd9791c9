package migration

import "sync"

// eachBounded calls fn(i) for every i in [0, n), at most limit at a time,
// and returns when all have returned. A policy's round handles its
// workloads this way: their calls mostly wait on API servers and
// registries, and one workload at a time made a round of a hundred last
// longer than a reconcile may.
func eachBounded(n, limit int, fn func(i int)) {
	slots := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
