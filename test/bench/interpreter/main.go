// Command interpreter is the load benchmark of stateshift's interpreter
// webhook, measured against Karmada's own example interpreter webhook in
// the same run and the same way: both are started as child processes on
// loopback with their own certificate, then N workers (2 x GOMAXPROCS by
// default) send requests over TLS with keep-alive through one shared
// transport for a fixed duration. It prints one line:
//
//	BENCH interpreter rps=<n> p50_ms=<x> p99_ms=<x> errors=<n> example_rps=<n> over_example=<x>
//
// The load generator runs on the same machine as the server it measures:
// on a small machine it takes a good part of the CPU.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stateshift/stateshift/test/selfsigned"
)

func main() {
	duration := flag.Duration("duration", 20*time.Second, "load duration per webhook")
	workers := flag.Int("workers", 2*runtime.GOMAXPROCS(0), "concurrent workers")
	binary := flag.String("binary", "", "interpreter-webhook binary (default: go build ./cmd/interpreter-webhook)")
	example := flag.String("example", filepath.Join(os.Getenv("HOME"), ".cache/stateshift/karmada-v1.18.2/bin/karmada-example-interpreter"), "Karmada's example interpreter webhook binary")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the interpreter-webhook under load to this file")
	flag.Parse()
	if err := run(*duration, *workers, *binary, *example); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var cpuProfile string

type result struct {
	requests  int64
	errors    int64
	latencies []time.Duration
	elapsed   time.Duration
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.latencies)-1))
	return r.latencies[i]
}

func run(duration time.Duration, workers int, binary, example string) error {
	tmp, err := os.MkdirTemp("", "interpreter-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if binary == "" {
		binary = filepath.Join(tmp, "interpreter-webhook")
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		build := exec.Command("go", "build", "-trimpath", "-o", binary, "./cmd/interpreter-webhook")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := build.Run(); err != nil {
			return fmt.Errorf("build interpreter-webhook: %w", err)
		}
	}
	if _, err := os.Stat(example); err != nil {
		return fmt.Errorf("karmada example interpreter: %w (hack/build-deps.sh builds it)", err)
	}
	ca, err := selfsigned.NewCA()
	if err != nil {
		return err
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		MaxIdleConns:        workers * 2,
		MaxIdleConnsPerHost: workers * 2,
		IdleConnTimeout:     time.Minute,
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	// Ours.
	ourDir := filepath.Join(tmp, "ours")
	if _, err := ca.WriteServing(ourDir, "127.0.0.1"); err != nil {
		return err
	}
	ourPort, probePort, pprofPort := freePort(), freePort(), freePort()
	args := []string{"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ourPort),
		"--cert-dir=" + ourDir, "--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--tls-min-version=1.2"}
	if cpuProfile != "" {
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort))
	}
	ours, err := startChild(binary, args...)
	if err != nil {
		return err
	}
	defer stopChild(ours)
	ourURL := fmt.Sprintf("https://127.0.0.1:%d/interpreter", ourPort)
	ourBodies, err := statefulSetBodies()
	if err != nil {
		return err
	}
	if err := waitReady(client, ourURL, ourBodies[0]); err != nil {
		return fmt.Errorf("interpreter-webhook: %w", err)
	}

	// Karmada's example: it builds a manager from a kubeconfig that it
	// never dials; give it one pointing nowhere.
	exDir := filepath.Join(tmp, "example")
	if _, err := ca.WriteServing(exDir, "127.0.0.1"); err != nil {
		return err
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(nowhereKubeconfig), 0o600); err != nil {
		return err
	}
	exPort := freePort()
	ex, err := startChild(example, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", exPort),
		"--cert-dir="+exDir, "--kubeconfig="+kubeconfig)
	if err != nil {
		return err
	}
	defer stopChild(ex)
	exURL := fmt.Sprintf("https://127.0.0.1:%d/interpreter-workload", exPort)
	exBodies, err := workloadBodies()
	if err != nil {
		return err
	}
	if err := waitReady(client, exURL, exBodies[0]); err != nil {
		return fmt.Errorf("karmada example interpreter: %w", err)
	}

	// Warm both up, then measure one after the other.
	load(client, ourURL, ourBodies, workers, 2*time.Second)
	load(client, exURL, exBodies, workers, 2*time.Second)
	profiled := make(chan error, 1)
	if cpuProfile != "" {
		go func() {
			profiled <- fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", pprofPort, int(duration.Seconds())-1), cpuProfile)
		}()
	} else {
		profiled <- nil
	}
	c0 := cpuTime(ours.Process.Pid)
	r := load(client, ourURL, ourBodies, workers, duration)
	c1 := cpuTime(ours.Process.Pid)
	if err := <-profiled; err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	e0 := cpuTime(ex.Process.Pid)
	e := load(client, exURL, exBodies, workers, duration)
	e1 := cpuTime(ex.Process.Pid)

	fmt.Fprintf(os.Stderr, "interpreter: %d requests in %s, example: %d requests (%d errors) in %s, %d workers, GOMAXPROCS %d, NumCPU %d\n",
		r.requests, r.elapsed.Round(time.Millisecond), e.requests, e.errors, e.elapsed.Round(time.Millisecond), workers, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(os.Stderr, "example p50_ms=%.3f p99_ms=%.3f\n", ms(e.percentile(0.50)), ms(e.percentile(0.99)))
	fmt.Fprintf(os.Stderr, "server CPU per request: interpreter %.0f us, example %.0f us\n",
		float64((c1-c0).Microseconds())/float64(r.requests), float64((e1-e0).Microseconds())/float64(e.requests))
	fmt.Printf("BENCH interpreter rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d example_rps=%.0f over_example=%.2f\n",
		r.rps(), ms(r.percentile(0.50)), ms(r.percentile(0.99)), r.errors, e.rps(), r.rps()/e.rps())
	return nil
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuTime is a process's user+system CPU time from /proc (Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// load runs workers against url, cycling through bodies, for d.
func load(client *http.Client, url string, bodies [][]byte, workers int, d time.Duration) result {
	var requests, errors atomic.Int64
	lat := make([][]time.Duration, workers)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 0, 64<<10)
			for i := w; ctx.Err() == nil; i++ {
				body := bodies[i%len(bodies)]
				t0 := time.Now()
				ok, err := post(client, url, body, &buf)
				lat[w] = append(lat[w], time.Since(t0))
				requests.Add(1)
				if err != nil || !ok {
					errors.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return result{requests: requests.Load(), errors: errors.Load(), latencies: all, elapsed: elapsed}
}

var successful = []byte(`"successful":true`)

func post(client *http.Client, url string, body []byte, buf *[]byte) (bool, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b := bytes.NewBuffer((*buf)[:0])
	if _, err := io.Copy(b, resp.Body); err != nil {
		return false, err
	}
	*buf = b.Bytes()
	return resp.StatusCode == http.StatusOK && bytes.Contains(*buf, successful), nil
}

func waitReady(client *http.Client, url string, body []byte) error {
	deadline := time.Now().Add(30 * time.Second)
	var buf []byte
	for {
		ok, err := post(client, url, body, &buf)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering successfully at %s: %v %s", url, err, buf)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startChild(path string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return cmd, nil
}

func stopChild(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("locate module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

const nowhereKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`

func mustJSON(v interface{}) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
