package migration

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEachBounded: every index is handled exactly once, never more than
// limit at a time, and the limit is reached (the work does run side by
// side).
func TestEachBounded(t *testing.T) {
	for _, tc := range []struct{ n, limit, wantPeak int }{
		{n: 0, limit: 4, wantPeak: 0},
		{n: 1, limit: 4, wantPeak: 1},
		{n: 20, limit: 4, wantPeak: 4},
		{n: 5, limit: 1, wantPeak: 1},
		{n: 3, limit: 0, wantPeak: 1}, // a non-positive limit still makes progress
	} {
		var running, peak atomic.Int32
		var mu sync.Mutex
		seen := map[int]int{}
		eachBounded(tc.n, tc.limit, func(i int) {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond) // long enough for the others to start
			running.Add(-1)
			mu.Lock()
			seen[i]++
			mu.Unlock()
		})
		if len(seen) != tc.n {
			t.Errorf("n=%d limit=%d: handled %d indices", tc.n, tc.limit, len(seen))
		}
		for i, k := range seen {
			if k != 1 || i < 0 || i >= tc.n {
				t.Errorf("n=%d limit=%d: index %d handled %d times", tc.n, tc.limit, i, k)
			}
		}
		if got := int(peak.Load()); got != tc.wantPeak {
			t.Errorf("n=%d limit=%d: at most %d ran at once, want %d", tc.n, tc.limit, got, tc.wantPeak)
		}
		if running.Load() != 0 {
			t.Errorf("n=%d limit=%d: returned with %d still running", tc.n, tc.limit, running.Load())
		}
	}
}
