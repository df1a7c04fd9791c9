package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stateshift/stateshift/test/e2e/framework"
)

// floor is what a move of the same state costs at least on this machine:
// CRIU's own dump and restore of a process of the same size, and one raw
// upload and download of as many bytes through the same registry.
type floor struct {
	dump, restore, upload, download float64
	// dumpMiB is the size of CRIU's images; answer is how long the restored
	// process took to answer its first query (not part of the floor).
	dumpMiB, answer float64
}

func (f floor) total() float64 { return f.dump + f.restore + f.upload + f.download }

// measureFloor runs memstate (the binary the workload image holds) outside
// any container, dumps it with criu, restores it, checks the restored
// process holds the same memory, then moves as many bytes through the
// registry.
func measureFloor(ctx context.Context, o *Options, memstate string) (floor, error) {
	var f floor
	if err := criuFloor(ctx, o, memstate, &f); err != nil {
		return f, err
	}
	up, down, err := blobRoundTrip(ctx, o.Registry, int64(o.MiB)<<20)
	f.upload, f.download = up.Seconds(), down.Seconds()
	return f, err
}

// criuFloor times `criu dump` and `criu restore` of a memstate process
// holding o.MiB.
func criuFloor(ctx context.Context, o *Options, memstate string, f *floor) error {
	// The images are a memory dump: a 0700 folder (MkdirTemp's mode),
	// removed at the end.
	dir, err := os.MkdirTemp("", "stateshift-floor-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	images := filepath.Join(dir, "images")
	if err := os.Mkdir(images, 0o700); err != nil {
		return err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}

	// Its own session (setsid): criu dumps the session with it and needs no
	// --shell-job. stdin and stdout are /dev/null; stderr a file that no one
	// writes between the dump and the restore (criu checks its size).
	logFile, err := os.Create(filepath.Join(dir, "memstate.log"))
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(memstate, "serve", "--mib", strconv.Itoa(o.MiB), "--listen", addr)
	// Go >= 1.24 listens with MPTCP where the kernel has it, and CRIU
	// cannot dump an MPTCP socket ("Unsupported proto 262"): plain TCP, as
	// a pod's memstate needs too.
	cmd.Env = append(os.Environ(), "GODEBUG=multipathtcp=0")
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start memstate: %w", err)
	}
	pid := cmd.Process.Pid
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	before, err := waitAnswer(ctx, addr, time.Minute, nil)
	if err != nil {
		return fmt.Errorf("memstate before the dump: %w (its log: %s)", err, tailFile(logFile.Name()))
	}
	// The query's connection is closed on both sides before the dump: a
	// listening socket dumps as it is, an established one would need
	// --tcp-established.
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if err := runCRIU(ctx, o.CRIU, dir, "dump.log", "dump", "-t", strconv.Itoa(pid), "-D", images, "-W", dir); err != nil {
		return err
	}
	f.dump = time.Since(start).Seconds()
	// A plain dump kills the tree; reap it so its PID is free for the restore.
	_ = cmd.Wait()
	exited = true
	f.dumpMiB = float64(dirBytes(images)) / (1 << 20)

	// criu restore -d leaves the restored tree behind when it exits; as the
	// children's subreaper (main), this process inherits and reaps it.
	pidfile := filepath.Join(dir, "restored.pid")
	start = time.Now()
	if err := runCRIU(ctx, o.CRIU, dir, "restore.log", "restore", "-d", "-D", images, "-W", dir, "--pidfile", pidfile); err != nil {
		return err
	}
	f.restore = time.Since(start).Seconds()
	restored, err := readPID(pidfile)
	if err != nil {
		return err
	}
	defer func() {
		_ = syscall.Kill(restored, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(restored, &ws, 0, nil)
	}()
	after, err := waitAnswer(ctx, addr, 30*time.Second, &before)
	if err != nil {
		return fmt.Errorf("restored memstate (pid %d): %w", restored, err)
	}
	f.answer = time.Since(start).Seconds() - f.restore
	if restored != before.PID || after.Counter < before.Counter {
		return fmt.Errorf("restored memstate: pid %d counter %d, dumped pid %d counter %d", restored, after.Counter, before.PID, before.Counter)
	}
	return nil
}

// waitAnswer polls memstate on addr until it answers with intact memory;
// with want, the answer must come from that process (same start and
// memory).
func waitAnswer(ctx context.Context, addr string, timeout time.Duration, want *framework.MemState) (framework.MemState, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		st, err := queryMemstate(ctx, addr)
		switch {
		case err != nil:
			lastErr = err
		case st.Digest != st.DigestAtStart:
			return st, fmt.Errorf("memory changed: digest %s, at start %s", st.Digest, st.DigestAtStart)
		case want != nil && (st.StartedUnix != want.StartedUnix || st.DigestAtStart != want.DigestAtStart):
			return st, fmt.Errorf("another process answers: started %d memory %s, want started %d memory %s",
				st.StartedUnix, st.DigestAtStart, want.StartedUnix, want.DigestAtStart)
		default:
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("no answer on %s within %s: %v", addr, timeout, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queryMemstate asks memstate serve on addr for its state, as `memstate
// query` does: one request, no proxy, the connection closed after it.
func queryMemstate(ctx context.Context, addr string) (framework.MemState, error) {
	var st framework.MemState
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return st, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	return st, nil
}

// runCRIU runs criu with its log in dir/logName; on failure the error
// holds the log's tail.
func runCRIU(ctx context.Context, criu, dir, logName string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args = append(args, "-o", logName)
	cmd := exec.CommandContext(ctx, criu, args...)
	if os.Getenv("CRIU_FAULT") == "" {
		// Fault 130 makes CRIU step the parasite's exit with PTRACE_SYSCALL
		// instead of a hardware breakpoint: in this machine's VM the
		// breakpoint never fires and dump and restore wait for it forever.
		cmd.Env = append(os.Environ(), "CRIU_FAULT=130")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log := tailFile(filepath.Join(dir, logName))
		if strings.Contains(log, "Can't get 1:16 opt: Operation not supported") {
			log += "\n(a CRIU without the fix for checkpoint-restore/criu issue 2718, such as 4.1.1, cannot dump an inet socket on Linux >= 6.16, which refuses SO_PASSCRED and SO_PASSSEC on it)"
		}
		return fmt.Errorf("criu %s: %w: %s\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()), log)
	}
	return nil
}

// buildMemstate builds test/realnode/memstate as the workload image has it
// (static, trimmed paths) into dir.
func buildMemstate(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "memstate")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./test/realnode/memstate")
	cmd.Dir = framework.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./test/realnode/memstate: %w: %s", err, out)
	}
	return bin, nil
}

// setSubreaper makes this process the reaper of orphaned descendants: the
// tree criu restore -d leaves behind.
func setSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

func readPID(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("criu restore's pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("criu restore's pid file %q: %w", b, err)
	}
	return pid, nil
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// tailFile is the last lines of a log, for an error message.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "(no " + filepath.Base(path) + ")"
		}
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
