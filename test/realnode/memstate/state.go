package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	tickInterval = 100 * time.Millisecond
	// pauseThreshold: a tick arriving this much wall-clock time after the
	// previous one means the process was frozen (checkpointed, then restored)
	// or starved for that long.
	pauseThreshold = 2 * time.Second
	maxNoteBytes   = 64 << 10
	maxMiB         = 64 << 10
)

// Status is the JSON answer of GET /: what a test compares before a
// checkpoint and after a restore.
type Status struct {
	Counter uint64 `json:"counter"`
	// Digest is recomputed over the memory for this answer; DigestAtStart was
	// computed once when it was filled. Intact says they are equal. A
	// light answer (GET /?digest=false) leaves Digest empty and Intact
	// false: it costs no pass over the memory, so a benchmark's clock can
	// stop at the process's first answer and check the digest after.
	Digest        string       `json:"digest"`
	DigestAtStart string       `json:"digestAtStart"`
	Intact        bool         `json:"intact"`
	MiB           int          `json:"mib"`
	PID           int          `json:"pid"`
	StartedUnix   int64        `json:"startedUnix"`
	Note          string       `json:"note"`
	RestoredHint  RestoredHint `json:"restoredHint"`
}

// RestoredHint tells a restored process from one that ran on: a process
// frozen by a checkpoint sees wall-clock time jump between two ticks.
type RestoredHint struct {
	// Pauses counts ticks that came more than pauseThreshold after the
	// previous one.
	Pauses         int   `json:"pauses"`
	LongestPauseMs int64 `json:"longestPauseMs"`
	TotalPauseMs   int64 `json:"totalPauseMs"`
	// LastPauseUnix is when the last pause ended (0: none yet).
	LastPauseUnix int64 `json:"lastPauseUnix"`
}

// state is everything memstate keeps, all of it in memory.
type state struct {
	mem           []byte // read-only once filled
	digestAtStart string
	mib           int
	pid           int
	started       time.Time
	counter       atomic.Uint64

	mu   sync.Mutex
	note string
	hint RestoredHint
}

// newState fills mib MiB with random bytes and records their digest.
func newState(mib int) (*state, error) {
	if mib < 1 || mib > maxMiB {
		return nil, fmt.Errorf("--mib %d: want 1..%d", mib, maxMiB)
	}
	s := &state{mem: make([]byte, mib<<20), mib: mib, pid: os.Getpid(), started: time.Now()}
	// Writing every byte also makes every page resident: the checkpoint
	// really carries mib MiB.
	_, _ = rand.Read(s.mem)
	s.digestAtStart = digest(s.mem)
	return s, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tick increments the counter every tickInterval until ctx ends and records
// wall-clock pauses between ticks.
func (s *state) tick(ctx context.Context) {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	// Round(0) drops the monotonic reading: CRIU may restore the process in
	// a time namespace whose monotonic clock hides the frozen time.
	last := time.Now().Round(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.counter.Add(1)
		now := time.Now().Round(0)
		s.observeTick(now.Sub(last), now)
		last = now
	}
}

func (s *state) observeTick(gap time.Duration, now time.Time) {
	if gap <= pauseThreshold {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint.Pauses++
	s.hint.TotalPauseMs += gap.Milliseconds()
	s.hint.LongestPauseMs = max(s.hint.LongestPauseMs, gap.Milliseconds())
	s.hint.LastPauseUnix = now.Unix()
}

func (s *state) status(withDigest bool) Status {
	var d string
	if withDigest {
		d = digest(s.mem)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		Counter:       s.counter.Load(),
		Digest:        d,
		DigestAtStart: s.digestAtStart,
		Intact:        withDigest && d == s.digestAtStart,
		MiB:           s.mib,
		PID:           s.pid,
		StartedUnix:   s.started.Unix(),
		Note:          s.note,
		RestoredHint:  s.hint,
	}
}

func (s *state) setNote(note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note = note
}

// ServeHTTP answers GET / with the Status (GET /?digest=false: without
// recomputing the digest) and PUT /note (the body is the
// new note) with the Status after the change.
func (s *state) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
	case r.URL.Path == "/note" && r.Method == http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNoteBytes))
		if err != nil {
			http.Error(w, fmt.Sprintf("read note: %v", err), http.StatusRequestEntityTooLarge)
			return
		}
		s.setNote(string(body))
	case r.URL.Path == "/" || r.URL.Path == "/note":
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.status(r.URL.Query().Get("digest") != "false"))
}

// serve ticks and answers on ln until ctx ends, then stops within a second
// or two and returns nil.
func serve(ctx context.Context, ln net.Listener, s *state) error {
	ctx, cancel := context.WithCancel(ctx)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      time.Minute, // a digest over many GiB takes a while
	}
	srv.SetKeepAlivesEnabled(false)
	var wg sync.WaitGroup
	wg.Go(func() { s.tick(ctx) })
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// A request still running (a digest over many GiB): drop it.
		_ = srv.Close()
	}
	return nil
}
