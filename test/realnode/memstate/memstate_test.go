package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// startServer runs serve on 127.0.0.1:0 in-process until the test ends.
func startServer(t *testing.T, mib int) (*state, string) {
	t.Helper()
	s, err := newState(mib)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not stop within 5s of its context ending")
		}
	})
	return s, ln.Addr().String()
}

// cli runs the command as main would and decodes its one line of output.
func cli(t *testing.T, args ...string) (Status, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	rc := run(t.Context(), args, &stdout, &stderr)
	var st Status
	if rc == 0 {
		out := stdout.String()
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("%v: want one line of output, got %q", args, out)
		}
		if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
			t.Fatalf("%v: %v in %q", args, err, out)
		}
	}
	return st, rc, stderr.String()
}

func TestQueryReportsTheMemory(t *testing.T) {
	s, addr := startServer(t, 1)
	st, rc, stderr := cli(t, "query", "--addr", addr)
	if rc != 0 {
		t.Fatalf("query: rc %d, %s", rc, stderr)
	}
	if !strings.HasPrefix(st.Digest, "sha256:") || len(st.Digest) != len("sha256:")+64 {
		t.Errorf("digest %q", st.Digest)
	}
	if st.Digest != st.DigestAtStart || !st.Intact {
		t.Errorf("fresh memory: digest %s, at start %s, intact %v", st.Digest, st.DigestAtStart, st.Intact)
	}
	if st.MiB != 1 || len(s.mem) != 1<<20 || st.PID != s.pid || st.StartedUnix != s.started.Unix() {
		t.Errorf("status %+v", st)
	}
	if st.RestoredHint.Pauses != 0 {
		t.Errorf("a process that ran on reports pauses: %+v", st.RestoredHint)
	}
}

func TestCounterAdvances(t *testing.T) {
	_, addr := startServer(t, 1)
	first, rc, stderr := cli(t, "query", "--addr", addr)
	if rc != 0 {
		t.Fatalf("query: rc %d, %s", rc, stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, rc, stderr := cli(t, "query", "--addr", addr)
		if rc != 0 {
			t.Fatalf("query: rc %d, %s", rc, stderr)
		}
		if st.Counter >= first.Counter+3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %d after 5s, was %d", st.Counter, first.Counter)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSetNote(t *testing.T) {
	_, addr := startServer(t, 1)
	st, rc, stderr := cli(t, "set-note", "before checkpoint", "--addr", addr)
	if rc != 0 || st.Note != "before checkpoint" {
		t.Fatalf("set-note: rc %d, note %q, %s", rc, st.Note, stderr)
	}
	st, rc, stderr = cli(t, "query", "--addr", addr)
	if rc != 0 || st.Note != "before checkpoint" {
		t.Fatalf("query after set-note: rc %d, note %q, %s", rc, st.Note, stderr)
	}
	if _, rc, _ := cli(t, "set-note", "--addr", addr); rc != 2 {
		t.Errorf("set-note without a value: rc %d, want 2", rc)
	}
}

// TestDigestIsRecomputed: one changed byte shows in the next answer.
func TestDigestIsRecomputed(t *testing.T) {
	s, addr := startServer(t, 1)
	s.mem[len(s.mem)/2] ^= 0x01
	st, rc, stderr := cli(t, "query", "--addr", addr)
	if rc != 0 {
		t.Fatalf("query: rc %d, %s", rc, stderr)
	}
	if st.Intact || st.Digest == st.DigestAtStart || st.DigestAtStart != s.digestAtStart {
		t.Errorf("a modified byte went unnoticed: %+v", st)
	}
	s.mem[len(s.mem)/2] ^= 0x01
	if st, _, _ := cli(t, "query", "--addr", addr); !st.Intact {
		t.Errorf("restored byte: %+v", st)
	}
}

// TestLightQuerySkipsTheDigest: --no-digest answers the process's identity
// and counter without a pass over the memory, and never claims the memory
// intact (it did not look).
func TestLightQuerySkipsTheDigest(t *testing.T) {
	s, addr := startServer(t, 1)
	st, rc, stderr := cli(t, "query", "--addr", addr, "--no-digest")
	if rc != 0 {
		t.Fatalf("query --no-digest: rc %d, %s", rc, stderr)
	}
	if st.Digest != "" || st.Intact {
		t.Errorf("a light answer reports a digest: %+v", st)
	}
	if st.DigestAtStart != s.digestAtStart || st.StartedUnix != s.started.Unix() || st.PID != s.pid {
		t.Errorf("a light answer lacks the identity: %+v", st)
	}
	if _, rc, _ := cli(t, "set-note", "x", "--addr", addr, "--no-digest"); rc != 2 {
		t.Errorf("set-note --no-digest: rc %d, want 2 (usage)", rc)
	}
}

func TestQueryFailsClearly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, rc, stderr := cli(t, "query", "--addr", addr); rc != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("nothing listening: rc %d, stderr %q", rc, stderr)
	}

	// A server that accepts and never answers: the deadline ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }()
		}
	}()
	start := time.Now()
	_, rc, stderr := cli(t, "query", "--addr", silent.Addr().String(), "--timeout", "300ms")
	if rc != 1 || !strings.Contains(stderr, "deadline exceeded") || time.Since(start) > 3*time.Second {
		t.Errorf("silent server: rc %d after %s, stderr %q", rc, time.Since(start), stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"query", "extra"}, {"serve", "--mib", "0"}, {"query", "--no-such-flag"}} {
		if _, rc, _ := cli(t, args...); rc != 2 {
			t.Errorf("%q: rc %d, want 2", args, rc)
		}
	}
}

func TestPausesAreCounted(t *testing.T) {
	s := &state{}
	s.observeTick(tickInterval, time.Unix(100, 0))
	s.observeTick(5*time.Second, time.Unix(200, 0))
	s.observeTick(3*time.Second, time.Unix(300, 0))
	want := RestoredHint{Pauses: 2, LongestPauseMs: 5000, TotalPauseMs: 8000, LastPauseUnix: 300}
	if s.hint != want {
		t.Errorf("hint %+v, want %+v", s.hint, want)
	}
}

// TestServeStopsOnCancel: SIGTERM ends the context main gives run; serve
// must return promptly and cleanly so the process exits 0.
func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--mib", "1", "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Errorf("rc %d, stderr %q", rc, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop within 5s")
	}
}
